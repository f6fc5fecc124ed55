//go:build scale

package scale

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
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/vault-injector/vault-injector/test/cluster"
	"github.com/vault-injector/vault-injector/test/testkit"
)

// shardLabel spreads the pods over the replicas: each replica's webhook entry selects one
// value, as a Service would spread the calls over the pods behind it.
const shardLabel = "vi-scale-shard"

// replica is one webhook pod of the chart, serving on its own loopback port.
type replica struct {
	shard, port, deployment, webhook string
}

// replicas is the chart installed in namespace ns with two webhook pods and one
// MutatingWebhookConfiguration entry per pod.
type replicas struct {
	ns, webhookConfig string
	list              []replica
}

// installReplicas installs the Helm chart in ns in self-managed certificate mode with the
// given certificate lifetimes and sync interval, as two webhook pods from the product image.
//
// On this machine the API server reaches only loopback, never a Service or pod IP: as in the
// e2e install test each pod uses hostNetwork and the configuration calls it by URL. Two
// hostNetwork pods cannot share a port, so the chart's Deployment is applied twice (one
// replica each, ports differ, a label tells their pods apart) and the chart's one webhook
// entry becomes one entry per replica, each for the pods of one shard (objectSelector).
// Everything else (RBAC, arguments, probes, security context, the entry's rules, selectors,
// matchConditions, failurePolicy, timeout) is what the chart renders.
func installReplicas(t *testing.T, ns string, certValues ...string) *replicas {
	t.Helper()
	root, err := testkit.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	namespace(t, ns, nil)
	apiPort := node.APIServer[strings.LastIndex(node.APIServer, ":")+1:]
	r := &replicas{ns: ns}
	var hooks []admissionregistrationv1.MutatingWebhook
	for i, shard := range []string{"a", "b"} {
		rep := replica{shard: shard, port: cluster.FreePort()}
		args := append([]string{
			"--set", "replicaCount=1", "--set", "hostNetwork=true", "--set", "image.pullPolicy=Never",
			// The after-admission guard (cluster-scoped, one per cluster) is not what scale measures.
			"--set", "guard.enabled=false",
			"--set", "webhook.port=" + rep.port, "--set", "webhook.vaultAddress=https://127.0.0.1:8200",
			"--set", "certs.selfManaged.ipAddresses={127.0.0.1}",
			"--set", "webhook.extraEnv[0].name=KUBERNETES_SERVICE_HOST", "--set", "webhook.extraEnv[0].value=127.0.0.1",
			"--set", "webhook.extraEnv[1].name=KUBERNETES_SERVICE_PORT", "--set-string", "webhook.extraEnv[1].value=" + apiPort,
		}, certValues...)
		for _, o := range testkit.DecodeDocs(t, testkit.HelmTemplate(t, filepath.Join(root, "deploy/helm/vault-injector"), ns, args...)) {
			switch o.GetKind() {
			case "PodDisruptionBudget":
				continue // one replica per Deployment
			case "Deployment":
				rep.deployment = shardDeployment(t, o, shard)
			case "MutatingWebhookConfiguration":
				r.webhookConfig = o.GetName()
				var mwc admissionregistrationv1.MutatingWebhookConfiguration
				fromUnstructured(t, o, &mwc)
				h := mwc.Webhooks[0]
				url := "https://127.0.0.1:" + rep.port + "/mutate"
				h.Name = shard + "." + h.Name
				h.ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &url}
				h.ObjectSelector = &metav1.LabelSelector{MatchLabels: map[string]string{shardLabel: shard}}
				hooks = append(hooks, h)
				rep.webhook = h.Name
				continue // applied once, below, with both entries
			}
			if i == 0 || o.GetKind() == "Deployment" {
				apply(t, ns, o)
			}
		}
		r.list = append(r.list, rep)
	}
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: r.webhookConfig}, Webhooks: hooks}
	mwcs := node.Client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	if _, err := mwcs.Create(ctx, mwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mwcs.Delete(ctx, r.webhookConfig, metav1.DeleteOptions{}) })
	r.waitReady(t)
	return r
}

// shardDeployment renames the chart's Deployment after its shard and labels its pods with it
// (selector included, so the two Deployments never claim each other's pods).
func shardDeployment(t *testing.T, o *unstructured.Unstructured, shard string) string {
	t.Helper()
	name := o.GetName() + "-" + shard
	o.SetName(name)
	for _, path := range [][]string{{"spec", "selector", "matchLabels"}, {"spec", "template", "metadata", "labels"}} {
		if err := unstructured.SetNestedField(o.Object, shard, append(path, shardLabel)...); err != nil {
			t.Fatal(err)
		}
	}
	return name
}

// apply creates or updates o by server-side apply, as helm would (cluster-scoped objects are
// deleted at cleanup; the namespace takes the rest).
func apply(t *testing.T, ns string, o *unstructured.Unstructured) {
	t.Helper()
	dyn, err := dynamic.NewForConfig(node.Config)
	if err != nil {
		t.Fatal(err)
	}
	gvk := o.GroupVersionKind()
	ri := dyn.Resource(schema.GroupVersionResource{Group: gvk.Group, Version: gvk.Version, Resource: strings.ToLower(gvk.Kind) + "s"})
	body, err := o.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	force := true
	opts := metav1.PatchOptions{FieldManager: "helm", Force: &force}
	if gvk.Kind == "ClusterRole" || gvk.Kind == "ClusterRoleBinding" {
		_, err = ri.Patch(ctx, o.GetName(), types.ApplyPatchType, body, opts)
		name := o.GetName()
		t.Cleanup(func() { _ = ri.Delete(ctx, name, metav1.DeleteOptions{}) })
	} else {
		_, err = ri.Namespace(ns).Patch(ctx, o.GetName(), types.ApplyPatchType, body, opts)
	}
	if err != nil {
		t.Fatalf("apply %s %s: %v", gvk.Kind, o.GetName(), err)
	}
}

// waitReady waits (bounded) for both webhook pods to be Ready and for caBundle to be set in
// every entry of the configuration.
func (r *replicas) waitReady(t *testing.T) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(2 * time.Minute)
	for {
		ready := 0
		for _, rep := range r.list {
			if p, err := r.pod(rep); err == nil && podReady(p) {
				ready++
			}
		}
		bundles := 0
		if m, err := node.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, r.webhookConfig, metav1.GetOptions{}); err == nil {
			for _, h := range m.Webhooks {
				if len(h.ClientConfig.CABundle) > 0 {
					bundles++
				}
			}
		}
		if ready == len(r.list) && bundles == len(r.list) {
			t.Logf("chart applied -> %d webhook pods Ready and caBundle set: %s", ready, time.Since(start).Round(100*time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 2m: %d of %d webhook pods Ready, caBundle set in %d entries", ready, len(r.list), bundles)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// pod is the one running pod of a replica's Deployment.
func (r *replicas) pod(rep replica) (*corev1.Pod, error) {
	pods, err := node.Client.CoreV1().Pods(r.ns).List(ctx, metav1.ListOptions{LabelSelector: shardLabel + "=" + rep.shard})
	if err != nil {
		return nil, err
	}
	if len(pods.Items) != 1 {
		return nil, fmt.Errorf("deployment %s has %d pods", rep.deployment, len(pods.Items))
	}
	return &pods.Items[0], nil
}

// errorLogLines counts the error lines the webhook pods logged.
func (r *replicas) errorLogLines(t *testing.T) int {
	t.Helper()
	n := 0
	for _, rep := range r.list {
		p, err := r.pod(rep)
		if err != nil {
			t.Fatal(err)
		}
		b, err := node.Client.CoreV1().Pods(r.ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: "webhook"}).DoRaw(ctx)
		if err != nil {
			t.Fatalf("logs of %s: %v", p.Name, err)
		}
		n += strings.Count(string(b), `"level":"ERROR"`)
	}
	return n
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func fromUnstructured(t *testing.T, o *unstructured.Unstructured, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, into); err != nil {
		t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
	}
}
