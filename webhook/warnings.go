package webhook

import (
	"fmt"
	"slices"
	"strings"

	"github.com/vault-injector/vault-injector/agentconfig"
	"github.com/vault-injector/vault-injector/patch"
)

// warnings names settings that are valid but cannot do what they say in this pod.
func (m *Mutator) warnings(pod *patch.Pod, runAs *RunAs, req *agentconfig.Request) []string {
	var w []string
	cfg := req.Agent
	if n := cfg.Notify; n != nil && n.Process != "" && cfg.Mode == agentconfig.ModeSidecar {
		if pod.Spec == nil || pod.Spec.ShareProcessNamespace == nil || !*pod.Spec.ShareProcessNamespace {
			w = append(w, fmt.Sprintf("vault-injector: %s=%s has no effect: the pod does not set spec.shareProcessNamespace: true, so the agent cannot see process %q",
				agentconfig.AnnotationNotifyProcess, n.Process, n.Process))
		} else if others := m.otherUsers(pod, runAs, req); len(others) > 0 {
			w = append(w, fmt.Sprintf("vault-injector: %s=%s may have no effect: the agent runs as UID %d with all capabilities dropped, so it can signal only processes of UID %d, but %s",
				agentconfig.AnnotationNotifyProcess, n.Process, m.Settings.AgentUID(), m.Settings.AgentUID(), strings.Join(others, ", ")))
		}
	}
	if m.Settings.Style == patch.StyleClassic && cfg.Mode == agentconfig.ModeSidecar && pod.OwnedBy("Job") {
		w = append(w, "vault-injector: the classic sidecar keeps running after the Job's containers exit, so the Job never completes; "+
			"set "+agentconfig.AnnotationMode+": init, or run the webhook with --sidecar-style=native (Kubernetes 1.29+)")
	}
	return w
}

// otherUsers names the app containers (those the containers annotation selects, else all)
// whose spec makes them run as a UID other than the agent's. A container whose spec does not
// say runs as its image's user, which admission cannot see: no warning for it.
func (m *Mutator) otherUsers(pod *patch.Pod, runAs *RunAs, req *agentconfig.Request) []string {
	var out []string
	for _, c := range pod.Spec.Containers {
		if len(req.Containers) > 0 && !slices.Contains(req.Containers, c.Name) {
			continue
		}
		if uid, ok := runAs.User(c.Name); ok && uid != m.Settings.AgentUID() {
			out = append(out, fmt.Sprintf("container %q runs as UID %d", c.Name, uid))
		}
	}
	return out
}
