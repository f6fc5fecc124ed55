package doctor

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestParseObject(t *testing.T) {
	for _, tc := range []struct {
		arg, kind, name string
		bad             bool
	}{
		{"app", "pod", "app", false},
		{"deploy/web", "deployment", "web", false},
		{"StatefulSet/db", "statefulset", "db", false},
		{"cj/nightly", "cronjob", "nightly", false},
		{"service/web", "", "", true},
		{"deployment/", "", "", true},
	} {
		kind, name, err := ParseObject(tc.arg)
		if (err != nil) != tc.bad || kind != tc.kind || name != tc.name {
			t.Errorf("ParseObject(%q) = %q, %q, %v", tc.arg, kind, name, err)
		}
		if err != nil && !strings.Contains(err.Error(), "KIND/NAME") {
			t.Errorf("error %q does not say what is expected", err)
		}
	}
}

func TestFromFile(t *testing.T) {
	doc := `apiVersion: v1
kind: ConfigMap
metadata: {name: skipped}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
      annotations: {vault-injector.io/role: r}
    spec:
      containers: [{name: app, image: x}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: batch}
spec:
  schedule: "@daily"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: app, image: x}]
`
	subs, err := fromFile(strings.NewReader(doc), "apps")
	if err != nil {
		t.Fatal(err)
	}
	if len(subs) != 2 {
		t.Fatalf("want 2 subjects, got %d", len(subs))
	}
	if subs[0].Name != "deployment apps/web (file)" || subs[0].Pod.Namespace != "apps" || subs[0].Pod.GenerateName != "web-" || subs[0].Pod.Annotations["vault-injector.io/role"] != "r" {
		t.Errorf("deployment: %+v", subs[0])
	}
	if subs[1].Name != "cronjob batch/nightly (file)" || subs[1].Pod.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("cronjob: %+v", subs[1])
	}
	for _, bad := range []string{"metadata: {name: x}\n", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"} {
		if _, err := fromFile(strings.NewReader(bad), "ns"); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestFromClusterDeployment(t *testing.T) {
	labels := map[string]string{"app": "web"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{ServiceAccountName: "web"}},
		},
	}
	mine := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "ns", Labels: labels}}
	other := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "db-1", Namespace: "ns", Labels: map[string]string{"app": "db"}}}
	subs, err := fromCluster(context.Background(), kubeOf(dep, mine, other), "ns", "deployment", "web")
	if err != nil {
		t.Fatal(err)
	}
	s := subs[0]
	if s.Workload != "deployment/web" || s.Pod.Spec.ServiceAccountName != "web" || len(s.Running) != 1 || s.Running[0].Name != "web-1" {
		t.Errorf("got %+v", s)
	}
	if _, err := fromCluster(context.Background(), kubeOf(), "ns", "deployment", "web"); err == nil || !strings.Contains(err.Error(), "read deployment ns/web") {
		t.Errorf("missing deployment: %v", err)
	}
}

func TestAdmissionCopyRemovesInjection(t *testing.T) {
	live := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "app-1", Namespace: "ns", ResourceVersion: "7", UID: "u",
			Annotations: map[string]string{"vault-injector.io/role": "r", "vault-injector.io/status": "{}", "vault-injector.io/agent-config": "{}"}},
		Spec: corev1.PodSpec{
			NodeName:       "node",
			InitContainers: []corev1.Container{{Name: "vault-injector-agent"}, {Name: "migrate"}},
			Containers: []corev1.Container{{Name: "app", VolumeMounts: []corev1.VolumeMount{
				{Name: "vault-injector-secrets", MountPath: "/vault/secrets"}, {Name: "data", MountPath: "/data"}}}},
			Volumes: []corev1.Volume{{Name: "vault-injector-secrets"}, {Name: "vault-injector-home"}, {Name: "data"}},
		},
	}
	got := admissionCopy(live)
	if got.Name != "" || got.GenerateName != "app-1-doctor-" || got.ResourceVersion != "" || got.UID != "" || got.Spec.NodeName != "" {
		t.Errorf("server fields kept: %+v", got.ObjectMeta)
	}
	if _, ok := got.Annotations["vault-injector.io/status"]; ok || got.Annotations["vault-injector.io/role"] != "r" || len(got.Annotations) != 1 {
		t.Errorf("annotations %v", got.Annotations)
	}
	if len(got.Spec.InitContainers) != 1 || got.Spec.InitContainers[0].Name != "migrate" || len(got.Spec.Volumes) != 1 ||
		len(got.Spec.Containers[0].VolumeMounts) != 1 || got.Spec.Containers[0].VolumeMounts[0].Name != "data" {
		t.Errorf("injected parts kept: %+v", got.Spec)
	}
	if len(live.Spec.Volumes) != 3 || len(live.Spec.Containers[0].VolumeMounts) != 2 {
		t.Error("the live pod was modified")
	}
}
