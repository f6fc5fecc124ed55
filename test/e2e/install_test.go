//go:build e2e

package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/vault-injector/vault-injector/test/cluster"
	"github.com/vault-injector/vault-injector/test/testkit"
)

// TestHelmInstallRunsTheWebhookInAPod installs the Helm chart for real: the webhook runs as a
// pod from the product image (non-root, read-only root filesystem, the chart's probes), in
// self-managed certificate mode with its ServiceAccount's in-cluster credentials and the
// chart's RBAC, and injects a pod (classic sidecar style: an init container renders, then a
// regular sidecar container renews) that then runs and serves its rendered secret.
//
// Two settings adapt the chart to this machine, where nothing may connect to a Service or pod
// IP: hostNetwork (the pod listens on loopback) and a URL clientConfig to 127.0.0.1 in place of
// the Service reference; the in-cluster client is pointed at the API server's loopback port.
func TestHelmInstallRunsTheWebhookInAPod(t *testing.T) {
	const ns = "vi-install"
	root, err := testkit.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	namespace(t, ns, false, nil) // hostNetwork needs a namespace that allows privileged pods
	port := cluster.FreePort()
	apiPort := env.c.APIServer[strings.LastIndex(env.c.APIServer, ":")+1:]
	objs := decodeDocs(t, helmTemplateNS(filepath.Join(root, "deploy/helm/vault-injector"), ns,
		"--set", "replicaCount=1", "--set", "hostNetwork=true", "--set", "image.pullPolicy=Never",
		"--set", "webhook.port="+port, "--set", "webhook.vaultAddress="+env.vault.Addr,
		"--set", "webhook.agentImagePullPolicy=Never", "--set", "certs.selfManaged.ipAddresses={127.0.0.1}",
		// The rest of the suite runs native sidecars; this install runs the classic style.
		"--set", "webhook.sidecarStyle=classic",
		"--set", "webhook.extraEnv[0].name=KUBERNETES_SERVICE_HOST", "--set", "webhook.extraEnv[0].value=127.0.0.1",
		"--set", "webhook.extraEnv[1].name=KUBERNETES_SERVICE_PORT", "--set-string", "webhook.extraEnv[1].value="+apiPort,
	)(t))

	// This test's webhook takes over from the suite's for its duration.
	mwcs := env.c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	if err := mwcs.Delete(ctx, "vault-injector.io", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := registerWebhook(ctx, "vault-injector.io", admissionregistrationv1.Fail); err != nil {
			t.Errorf("restore the suite's webhook: %v", err)
		}
	})

	dyn, err := dynamic.NewForConfig(env.c.Config)
	if err != nil {
		t.Fatal(err)
	}
	url := "https://127.0.0.1:" + port + "/mutate"
	var webhookConfig string
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		plural := strings.ToLower(gvk.Kind) + "s"
		if p, ok := strings.CutSuffix(plural, "ys"); ok {
			plural = p + "ies" // validatingadmissionpolicies
		}
		if gvk.Kind == "PodDisruptionBudget" {
			continue // one replica
		}
		if gvk.Kind == "MutatingWebhookConfiguration" {
			webhookConfig = o.GetName()
			hooks, _, _ := unstructured.NestedSlice(o.Object, "webhooks")
			for i := range hooks {
				h := hooks[i].(map[string]any)
				h["clientConfig"] = map[string]any{"url": url}
			}
			_ = unstructured.SetNestedSlice(o.Object, hooks, "webhooks")
		}
		ri := dyn.Resource(schema.GroupVersionResource{Group: gvk.Group, Version: gvk.Version, Resource: plural})
		body, err := o.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		force := true
		opts := metav1.PatchOptions{FieldManager: "helm", Force: &force}
		if o.GetNamespace() != "" || namespaced(gvk.Kind) {
			_, err = ri.Namespace(ns).Patch(ctx, o.GetName(), types.ApplyPatchType, body, opts)
		} else {
			_, err = ri.Patch(ctx, o.GetName(), types.ApplyPatchType, body, opts)
			name := o.GetName()
			t.Cleanup(func() { _ = ri.Delete(ctx, name, metav1.DeleteOptions{}) })
		}
		if err != nil {
			t.Fatalf("apply %s %s: %v", gvk.Kind, o.GetName(), err)
		}
	}

	// The webhook pod becomes Ready (its readiness probe passes) and sets caBundle itself.
	start := time.Now()
	var bundle []byte
	deadline := time.Now().Add(90 * time.Second)
	for {
		pods, err := env.c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=vault-injector"})
		ready := err == nil && len(pods.Items) == 1 && podReady(&pods.Items[0])
		if m, err := mwcs.Get(ctx, webhookConfig, metav1.GetOptions{}); err == nil && len(m.Webhooks) > 0 {
			bundle = m.Webhooks[0].ClientConfig.CABundle
		}
		if ready && len(bundle) > 0 {
			break
		}
		if time.Now().After(deadline) {
			if err == nil && len(pods.Items) > 0 {
				t.Logf("webhook pod: %s", describe(&pods.Items[0]))
			}
			t.Fatalf("webhook pod not ready with caBundle set after 90s (caBundle %d bytes)", len(bundle))
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("helm objects applied -> webhook pod ready and caBundle set: %s", time.Since(start).Round(100*time.Millisecond))

	// A pod in an opted-in namespace is injected by it and serves its secret.
	appNS := namespace(t, "vi-install-app", true, nil)
	role, path := vaultApp(t, appNS, "app", "installed-with-helm")
	appPort := cluster.FreePort()
	pod := httpdPod("app", "app", appPort, map[string]string{
		"vault-injector.io/role":          role,
		"vault-injector.io/template-page": fmt.Sprintf(`{{ with secret %q }}{{ .Data.var }}{{ end }}`, path),
	})
	if _, err := env.c.Client.CoreV1().Pods(appNS).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got := waitPod(t, appNS, "app", 90*time.Second, "app and classic sidecar running", func(p *corev1.Pod) bool {
		agent := false
		for _, c := range p.Status.ContainerStatuses {
			agent = agent || c.Name == "vault-injector-agent" && c.State.Running != nil
		}
		return running(p) && agent
	})
	if n := len(got.Spec.InitContainers); n != 1 || got.Spec.InitContainers[0].Name != "vault-injector-init" || got.Spec.InitContainers[0].RestartPolicy != nil {
		t.Errorf("classic style: want one plain init container vault-injector-init, got %d", n)
	}
	if body := get(t, "http://127.0.0.1:"+appPort+"/page"); body != "installed-with-helm" {
		t.Fatalf("served %q", body)
	}

	// And it was this webhook: its metrics, over TLS verified with the caBundle it published.
	if n := metricFrom(t, "127.0.0.1:"+port, bundle, "injected", ""); n != 1 {
		t.Errorf("the installed webhook counted %v injections, want 1", n)
	}
}

func namespaced(kind string) bool {
	switch kind {
	case "ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration", "Namespace",
		"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding":
		return false
	}
	return true
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}
