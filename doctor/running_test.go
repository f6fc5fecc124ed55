package doctor

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func annotatedPod(name string, injected bool) corev1.Pod {
	ann := map[string]string{"vault-injector.io/role": "r", "vault-injector.io/secret-a": "secret/a"}
	if injected {
		ann["vault-injector.io/status"] = "{}"
	}
	return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Annotations: ann}}
}

func TestCheckDrift(t *testing.T) {
	plain := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "plain", Namespace: "ns"}}
	optedOut := annotatedPod("out", false)
	optedOut.Annotations["vault-injector.io/inject"] = "false"
	for _, tc := range []struct {
		name     string
		workload string
		pods     []corev1.Pod
		want     Status
		wantMsg  string
		wantFix  string
	}{
		{"all injected", "deployment/app", []corev1.Pod{annotatedPod("a", true), plain}, Pass, "all 1 running annotated", ""},
		{"nothing annotated", "", []corev1.Pod{plain, optedOut}, Pass, "no running pod asks", ""},
		{"deployment drift", "deployment/app", []corev1.Pod{annotatedPod("a", true), annotatedPod("b", false)}, Fail, "1 of 2 running annotated pod(s) were not injected", "kubectl -n ns rollout restart deployment/app"},
		{"bare pod drift", "", []corev1.Pod{annotatedPod("a", false)}, Fail, ": a", "kubectl -n ns get pod a -o yaml > pods.yaml && kubectl -n ns replace --force -f pods.yaml"},
		{"job drift", "job/batch", []corev1.Pod{annotatedPod("a", false)}, Fail, ": a", "kubectl -n ns get job batch -o yaml > job.yaml"},
		{"hashicorp annotations drift", "statefulset/db", []corev1.Pod{{ObjectMeta: metav1.ObjectMeta{Name: "db-0", Namespace: "ns", Annotations: map[string]string{"vault.hashicorp.com/agent-inject": "true"}}}}, Fail, "db-0", "rollout restart statefulset/db"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := checkDrift("s", tc.workload, tc.pods)
			if f.Status != tc.want || !strings.Contains(f.Message, tc.wantMsg) || !strings.Contains(f.Fix, tc.wantFix) {
				t.Errorf("got %+v", f)
			}
		})
	}
}

func TestCheckAgentErrors(t *testing.T) {
	failing := annotatedPod("failing", true)
	failing.Status.InitContainerStatuses = []corev1.ContainerStatus{{
		Name: "vault-injector-agent",
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: 1, Message: `Vault role "r" at auth/kubernetes does not allow service account ns/intruder`,
		}},
	}}
	appFailing := annotatedPod("app-failing", true)
	appFailing.Status.ContainerStatuses = []corev1.ContainerStatus{{
		Name:  "app",
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Message: "app crashed"}},
	}}
	notInjected := annotatedPod("not-injected", false)
	fs := checkAgentErrors(context.Background(), kubeOf(), "s", []corev1.Pod{failing, appFailing, notInjected})
	if len(fs) != 2 {
		t.Fatalf("want a finding per injected pod, got %+v", fs)
	}
	if fs[0].Status != Fail || !strings.Contains(fs[0].Message, `pod failing: the agent (vault-injector-agent) says: Vault role "r"`) || !strings.Contains(fs[0].Fix, "kubectl -n ns logs failing -c vault-injector-agent") {
		t.Errorf("failing: %+v", fs[0])
	}
	if fs[1].Status != Pass {
		t.Errorf("an app container's failure is not the agent's: %+v", fs[1])
	}
}
