//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/vault-injector/vault-injector/agentconfig"
	"github.com/vault-injector/vault-injector/patch"
	"github.com/vault-injector/vault-injector/test/cluster"
	"github.com/vault-injector/vault-injector/test/testkit"
)

// TestPolicyHoldsAfterAdmission installs the chart's ValidatingAdmissionPolicy (guard.yaml)
// and tries each way around the admission-time policy on a running injected pod: changing a
// vault-injector.io/ annotation (the agent's config), adding one, swapping the agent's image,
// and an ephemeral container mounting our volumes or targeting the agent. Each is refused;
// changes the guard has no business with (a label, a plain debug container) still pass.
func TestPolicyHoldsAfterAdmission(t *testing.T) {
	requireVAP(t)
	installGuard(t)
	ns := namespace(t, "p-guard", true, nil)
	role, path := vaultApp(t, ns, "app", "guarded")
	port := cluster.FreePort()
	pod := httpdPod("app", "app", port, map[string]string{"vault-injector.io/role": role, "vault-injector.io/secret-a": path})
	if _, err := env.c.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod(t, ns, "app", 90*time.Second, "app running", running)
	pods := env.c.Client.CoreV1().Pods(ns)

	const (
		annMsg   = "vault-injector: the vault-injector.io/ annotations of an injected pod cannot change (they hold the agent's config, checked at admission): delete and recreate the pod"
		imageMsg = "vault-injector: the images of an injected pod's vault-injector- containers cannot change: delete and recreate the pod"
		ephMsg   = "vault-injector: an ephemeral container of an injected pod cannot mount the vault-injector- volumes or target the vault-injector- containers"
	)
	type change func(p *corev1.Pod)
	updateWith := func(c change, opts metav1.UpdateOptions) error {
		p, err := pods.Get(ctx, "app", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c(p)
		_, err = pods.Update(ctx, p, opts)
		return err
	}
	update := func(c change) error { return updateWith(c, metav1.UpdateOptions{}) }
	debug := func(name string, c change) error {
		p, err := pods.Get(ctx, "app", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
			Name: name, Image: appImage, ImagePullPolicy: corev1.PullNever, Command: []string{"sleep", "1"}}})
		c(p)
		_, err = pods.UpdateEphemeralContainers(ctx, "app", p, metav1.UpdateOptions{})
		return err
	}
	otherRoleConfig := func(p *corev1.Pod) {
		var cfg map[string]any
		if err := json.Unmarshal([]byte(p.Annotations[agentconfig.AnnotationAgentConfig]), &cfg); err != nil {
			t.Fatal(err)
		}
		cfg["identities"].([]any)[0].(map[string]any)["role"] = "payments-admin"
		b, _ := json.Marshal(cfg)
		p.Annotations[agentconfig.AnnotationAgentConfig] = string(b)
	}
	last := func(p *corev1.Pod) *corev1.EphemeralContainer {
		return &p.Spec.EphemeralContainers[len(p.Spec.EphemeralContainers)-1]
	}
	// The binding reaches the API server's admission chain after a moment; probe with dry runs,
	// so a change that slips through before then is not stored.
	waitUntil(t, 20*time.Second, "the guard to refuse an agent-config change", func() (bool, string) {
		err := updateWith(otherRoleConfig, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil && strings.Contains(err.Error(), annMsg), fmt.Sprint(err)
	})
	for _, tc := range []struct {
		name string
		try  func() error
		want string // empty: allowed
	}{
		{"agent config to another role", func() error { return update(otherRoleConfig) }, annMsg},
		{"agent config removed", func() error {
			return update(func(p *corev1.Pod) { delete(p.Annotations, agentconfig.AnnotationAgentConfig) })
		}, annMsg},
		{"annotation added", func() error {
			return update(func(p *corev1.Pod) { p.Annotations["vault-injector.io/address"] = "https://vault.evil.example:8200" })
		}, annMsg},
		{"agent image swapped", func() error {
			return update(func(p *corev1.Pod) {
				for i := range p.Spec.InitContainers {
					if p.Spec.InitContainers[i].Name == patch.AgentContainer {
						p.Spec.InitContainers[i].Image = appImage
					}
				}
			})
		}, imageMsg},
		{"ephemeral container mounting the secrets volume", func() error {
			return debug("dbg-secrets", func(p *corev1.Pod) {
				last(p).VolumeMounts = []corev1.VolumeMount{{Name: patch.SecretsVolume, MountPath: "/x"}}
			})
		}, ephMsg},
		{"ephemeral container mounting the token volume", func() error {
			return debug("dbg-token", func(p *corev1.Pod) {
				last(p).VolumeMounts = []corev1.VolumeMount{{Name: patch.TokenVolume, MountPath: "/x"}}
			})
		}, ephMsg},
		{"ephemeral container targeting the agent", func() error {
			return debug("dbg-target", func(p *corev1.Pod) { last(p).TargetContainerName = patch.AgentContainer })
		}, ephMsg},
		{"label added (allowed)", func() error {
			return update(func(p *corev1.Pod) {
				if p.Labels == nil {
					p.Labels = map[string]string{}
				}
				p.Labels["touched"] = "yes"
			})
		}, ""},
		{"plain ephemeral container (allowed)", func() error { return debug("dbg-plain", func(*corev1.Pod) {}) }, ""},
	} {
		err := tc.try()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.want != "" && err == nil:
			t.Errorf("%s: accepted, want refused with %q", tc.name, tc.want)
		case tc.want != "" && (!apierrors.IsInvalid(err) && !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want a refusal with %q", tc.name, err, tc.want)
		}
	}
	p, err := pods.Get(ctx, "app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(p.Annotations[agentconfig.AnnotationAgentConfig], "payments-admin") {
		t.Errorf("the agent config changed after admission")
	}
}

// requireVAP fails unless the API server serves admissionregistration.k8s.io/v1
// ValidatingAdmissionPolicy (GA in 1.30).
func requireVAP(t *testing.T) {
	t.Helper()
	res, err := env.c.Client.Discovery().ServerResourcesForGroupVersion("admissionregistration.k8s.io/v1")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.APIResources {
		if r.Name == "validatingadmissionpolicies" {
			return
		}
	}
	t.Fatal("the API server does not serve admissionregistration.k8s.io/v1 validatingadmissionpolicies")
}

// installGuard creates the chart's ValidatingAdmissionPolicy and binding, as rendered.
func installGuard(t *testing.T) {
	t.Helper()
	root, err := testkit.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := testkit.HelmTemplate(t, filepath.Join(root, "deploy/helm/vault-injector"), "vault-injector", "--show-only", "templates/guard.yaml")
	api := env.c.Client.AdmissionregistrationV1()
	for _, o := range testkit.DecodeDocs(t, out) {
		switch o.GetKind() {
		case "ValidatingAdmissionPolicy":
			var vap admissionregistrationv1.ValidatingAdmissionPolicy
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &vap); err != nil {
				t.Fatal(err)
			}
			if _, err := api.ValidatingAdmissionPolicies().Create(ctx, &vap, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = api.ValidatingAdmissionPolicies().Delete(ctx, vap.Name, metav1.DeleteOptions{}) })
		case "ValidatingAdmissionPolicyBinding":
			var b admissionregistrationv1.ValidatingAdmissionPolicyBinding
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &b); err != nil {
				t.Fatal(err)
			}
			if _, err := api.ValidatingAdmissionPolicyBindings().Create(ctx, &b, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = api.ValidatingAdmissionPolicyBindings().Delete(ctx, b.Name, metav1.DeleteOptions{}) })
		default:
			t.Fatalf("guard.yaml renders a %s", o.GetKind())
		}
	}
}
