package doctor

import (
	"bufio"
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/vault-injector/vault-injector/agentconfig"
	"github.com/vault-injector/vault-injector/patch"
)

// checkDrift lists running pods that ask for secrets but carry no injection status: created
// while the webhook was down under failurePolicy Ignore, before their namespace was labelled,
// or before the webhook was installed. They run without their secrets until recreated.
func checkDrift(subject, workload string, pods []corev1.Pod) Finding {
	const check = "drift"
	var drifted []string
	annotated := 0
	ns := ""
	for _, p := range pods {
		if !requestsSecrets(p.Annotations) {
			continue
		}
		annotated++
		ns = p.Namespace
		if _, ok := p.Annotations[agentconfig.AnnotationStatus]; !ok {
			drifted = append(drifted, p.Name)
		}
	}
	switch {
	case annotated == 0:
		return pass(check, subject, "no running pod asks for secrets")
	case len(drifted) == 0:
		return pass(check, subject, "all %d running annotated pod(s) carry %s", annotated, agentconfig.AnnotationStatus)
	}
	return fail(check, subject, rollCommand(ns, workload, drifted),
		"%d of %d running annotated pod(s) were not injected (created while the webhook was down under failurePolicy Ignore, before the namespace was labelled, or before the webhook was installed): %s",
		len(drifted), annotated, strings.Join(drifted, ", "))
}

// requestsSecrets reports annotations that ask for injection (ours or, translated, HashiCorp's).
func requestsSecrets(ann map[string]string) bool {
	if agentconfig.OptedOut(ann) {
		return false
	}
	if agentconfig.HasVaultAnnotations(ann) {
		return true
	}
	for k := range ann {
		if strings.HasPrefix(k, agentconfig.Prefix+"secret-") || strings.HasPrefix(k, agentconfig.Prefix+"template-") || k == agentconfig.AnnotationTemplatesConfigMap {
			return true
		}
	}
	return false
}

// rollCommand is how to recreate the drifted pods through their owner.
func rollCommand(ns, workload string, pods []string) string {
	kind, name, _ := strings.Cut(workload, "/")
	switch kind {
	case "deployment", "statefulset", "daemonset":
		return fmt.Sprintf("kubectl -n %s rollout restart %s", ns, workload)
	case "replicaset":
		return fmt.Sprintf("kubectl -n %s delete pod %s (its ReplicaSet %s recreates them)", ns, strings.Join(pods, " "), name)
	case "job":
		return fmt.Sprintf("kubectl -n %s get job %s -o yaml > job.yaml && kubectl -n %s replace --force -f job.yaml", ns, name, ns)
	}
	return fmt.Sprintf("recreate them: kubectl -n %s get pod %s -o yaml > pods.yaml && kubectl -n %s replace --force -f pods.yaml", ns, strings.Join(pods, " "), ns)
}

// ourContainers are the containers the webhook adds.
var ourContainers = []string{patch.InitContainer, patch.AgentContainer}

// checkAgentErrors quotes the last error of our containers in each running pod: the
// termination message (the agent writes its reason there), else the last log lines that
// mention an error.
func checkAgentErrors(ctx context.Context, c Kube, subject string, pods []corev1.Pod) []Finding {
	const check = "agent-error"
	var out []Finding
	for i := range pods {
		p := &pods[i]
		if _, ok := p.Annotations[agentconfig.AnnotationStatus]; !ok {
			continue
		}
		msg, container := terminationMessage(p)
		if msg == "" {
			msg, container = logErrors(ctx, c, p)
		}
		if msg == "" {
			out = append(out, pass(check, subject, "pod %s: no agent error", p.Name))
			continue
		}
		out = append(out, fail(check, subject, fmt.Sprintf("fix what the agent says; details: kubectl -n %s logs %s -c %s", p.Namespace, p.Name, container),
			"pod %s: the agent (%s) says: %s", p.Name, container, msg))
	}
	return out
}

// terminationMessage is the last termination message of our containers that failed.
func terminationMessage(p *corev1.Pod) (msg, container string) {
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, s := range list {
			if !isOurs(s.Name) {
				continue
			}
			for _, st := range []corev1.ContainerState{s.State, s.LastTerminationState} {
				if t := st.Terminated; t != nil && t.ExitCode != 0 && t.Message != "" {
					return strings.TrimSpace(t.Message), s.Name
				}
			}
		}
	}
	return "", ""
}

func isOurs(name string) bool {
	for _, o := range ourContainers {
		if name == o {
			return true
		}
	}
	return false
}

// logErrors are the last lines (at most three) of our containers' logs that mention an error.
func logErrors(ctx context.Context, c Kube, p *corev1.Pod) (msg, container string) {
	tail := int64(100)
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, s := range list {
			if !isOurs(s.Name) {
				continue
			}
			raw, err := c.Logs(ctx, p.Namespace, p.Name, s.Name, tail)
			if err != nil {
				continue
			}
			var hits []string
			sc := bufio.NewScanner(strings.NewReader(string(raw)))
			for sc.Scan() {
				if l := sc.Text(); strings.Contains(strings.ToLower(l), "error") {
					hits = append(hits, strings.TrimSpace(l))
				}
			}
			if len(hits) > 3 {
				hits = hits[len(hits)-3:]
			}
			if len(hits) > 0 {
				return strings.Join(hits, " | "), s.Name
			}
		}
	}
	return "", ""
}
