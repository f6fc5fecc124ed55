package webhook

import (
	"fmt"
	"regexp"
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
		} else if uid, known := m.agentUID(runAs); known {
			if others := otherUsers(pod, runAs, req, uid); len(others) > 0 {
				w = append(w, fmt.Sprintf("vault-injector: %s=%s may have no effect: the agent runs as UID %d with all capabilities dropped, so it can signal only processes of UID %d, but %s",
					agentconfig.AnnotationNotifyProcess, n.Process, uid, uid, strings.Join(others, ", ")))
			}
		}
	}
	if m.Settings.Style == patch.StyleClassic && cfg.Mode == agentconfig.ModeSidecar && pod.OwnedBy("Job") {
		w = append(w, "vault-injector: the classic sidecar keeps running after the Job's containers exit, so the Job never completes; "+
			"set "+agentconfig.AnnotationMode+": init, or run the webhook with --sidecar-style=native (Kubernetes 1.29+)")
	}
	if env := cfg.Env; env != nil && !env.Versioned {
		if names := leasedEnvVars(env); len(names) > 0 {
			w = append(w, fmt.Sprintf("vault-injector: %s look leased (dynamic credentials or certificates): an environment variable cannot change in a running process, "+
				"so the app keeps the first value after the agent replaces it; set %s: restart to restart the app container when they change",
				strings.Join(names, ", "), agentconfig.AnnotationEnvOnChange))
		}
	}
	return w
}

// leasedKinds are the path elements, just before the role's name, of Vault's secrets engines
// that issue leased, expiring values (<mount>/creds/<role> of database, aws, rabbitmq, consul...;
// pki's issue and sign; aws's sts). Admission cannot ask Vault, so it goes by the path.
var leasedKinds = []string{"creds", "issue", "sign", "sts"}

// secretCall finds the paths of `secret "<path>"` calls in a template.
var secretCall = regexp.MustCompile(`secret\s+"([^"]+)"`)

// leasedEnvVars names the variables whose path, or a path their template reads, looks leased.
func leasedEnvVars(env *agentconfig.Env) []string {
	var out []string
	for _, v := range env.Vars {
		paths := []string{v.Path}
		if v.Template != "" {
			paths = nil
			for _, m := range secretCall.FindAllStringSubmatch(v.Template, -1) {
				paths = append(paths, m[1])
			}
		}
		if slices.ContainsFunc(paths, looksLeased) {
			out = append(out, v.Name)
		}
	}
	return out
}

func looksLeased(path string) bool {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	return len(parts) >= 3 && slices.Contains(leasedKinds, parts[len(parts)-2])
}

// agentUID is the UID our containers will run as, when admission can tell. With
// --agent-uid=auto they get no runAsUser of their own, so they run as the pod's runAsUser when
// it sets one; else the platform (OpenShift's SCC gives every container without a UID the same
// one) or the image decides, which admission cannot see.
func (m *Mutator) agentUID(runAs *RunAs) (uid int64, known bool) {
	if uid, known = m.Settings.AgentUID(); known {
		return uid, true
	}
	if runAs == nil || runAs.SecurityContext == nil || runAs.SecurityContext.RunAsUser == nil {
		return 0, false
	}
	return *runAs.SecurityContext.RunAsUser, true
}

// otherUsers names the app containers (those the containers annotation selects, else all)
// whose spec makes them run as a UID other than the agent's. A container whose spec does not
// say runs as its image's user, which admission cannot see: no warning for it.
func otherUsers(pod *patch.Pod, runAs *RunAs, req *agentconfig.Request, agent int64) []string {
	var out []string
	for _, c := range pod.Spec.Containers {
		if len(req.Containers) > 0 && !slices.Contains(req.Containers, c.Name) {
			continue
		}
		if uid, ok := runAs.User(c.Name); ok && uid != agent {
			out = append(out, fmt.Sprintf("container %q runs as UID %d", c.Name, uid))
		}
	}
	return out
}
