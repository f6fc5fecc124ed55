//go:build e2e

package e2e

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/vault-injector/vault-injector/test/cluster"
	"github.com/vault-injector/vault-injector/test/testkit"
)

// injectorMatchConditions is the condition the Helm chart and the kustomize base ship: only pods
// with a vault-injector.io/ annotation are sent to the webhook. The suite registers its webhook
// with it too, so every test runs behind what operators install;
// TestWebhookDownSparesUnannotatedPods checks the three agree.
var injectorMatchConditions = []admissionregistrationv1.MatchCondition{{
	Name:       "has-injector-annotation",
	Expression: "has(object.metadata.annotations) && object.metadata.annotations.exists(k, k.startsWith('vault-injector.io/'))",
}}

// TestWebhookDownSparesUnannotatedPods: with failurePolicy Fail and the webhook unreachable, a
// pod without any vault-injector.io/ annotation in an opted-in namespace is created and starts
// (the shipped matchCondition keeps it away from the webhook); an annotated one is refused.
//
// "Down" is a second webhook configuration, rendered by the chart, pointing at a port nobody
// listens on, for a namespace label only this test uses: the suite's webhook keeps serving the
// other tests.
func TestWebhookDownSparesUnannotatedPods(t *testing.T) {
	root, err := testkit.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	shipped := map[string]admissionregistrationv1.MutatingWebhook{
		"helm":      onlyWebhook(t, decodeDocs(t, helmTemplate(filepath.Join(root, "deploy/helm/vault-injector"))(t))),
		"kustomize": onlyWebhook(t, decodeDocs(t, kustomize(filepath.Join(root, "deploy/kustomize/overlays/self-signed"))(t))),
	}
	suite, err := env.c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "vault-injector.io", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	shipped["the suite's registration"] = suite.Webhooks[0]
	for name, hook := range shipped {
		if !reflect.DeepEqual(hook.MatchConditions, injectorMatchConditions) {
			t.Errorf("%s: matchConditions %+v, want %+v", name, hook.MatchConditions, injectorMatchConditions)
		}
	}

	hook := shipped["helm"]
	url := "https://127.0.0.1:" + cluster.FreePort() + "/mutate"
	hook.Name = "pods.down.vault-injector.io"
	hook.ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: env.c.CA.CertPEM}
	hook.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"vi-webhook-down": "enabled"}}
	if fail := admissionregistrationv1.Fail; hook.FailurePolicy == nil || *hook.FailurePolicy != fail {
		t.Fatalf("the chart's failurePolicy is %v, want Fail", hook.FailurePolicy)
	}
	mwcs := env.c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	down := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "vi-webhook-down.vault-injector.io"},
		Webhooks:   []admissionregistrationv1.MutatingWebhook{hook},
	}
	if _, err := mwcs.Create(ctx, down, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mwcs.Delete(ctx, down.Name, metav1.DeleteOptions{}) })
	ns := namespace(t, "s7-webhook-down", false, map[string]string{"vi-webhook-down": "enabled"})

	// The API server picks the configuration up asynchronously: once the annotated pod is
	// refused, the unannotated ones below are admitted by the condition, not by a stale cache.
	const refused = `failed calling webhook "pods.down.vault-injector.io"`
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := dryRunCreate(t, ns, simplePod("annotated", wantsSecret))
		if err != nil && strings.Contains(err.Error(), refused) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("annotated pod with the webhook down: got %v, want %q", err, refused)
		}
		time.Sleep(200 * time.Millisecond)
	}
	optOut := map[string]string{"vault-injector.io/inject": "false"}
	if _, err := dryRunCreate(t, ns, simplePod("opted-out", optOut)); err == nil || !strings.Contains(err.Error(), refused) {
		t.Errorf("pod with only %v: got %v; any key under the prefix goes to the webhook", optOut, err)
	}

	foreign := simplePod("foreign", map[string]string{"example.com/owner": "team-a", "vault.hashicorp.com/role": "not-ours"})
	if _, err := dryRunCreate(t, ns, foreign); err != nil {
		t.Errorf("pod with only other tools' annotations refused: %v", err)
	}
	if _, err := env.c.Client.CoreV1().Pods(ns).Create(ctx, simplePod("plain", nil), metav1.CreateOptions{}); err != nil {
		t.Fatalf("unannotated pod refused while the webhook is down: %v", err)
	}
	waitPod(t, ns, "plain", 60*time.Second, "app running", running)
}

// onlyWebhook returns the one webhook of the one MutatingWebhookConfiguration in objs.
func onlyWebhook(t *testing.T, objs []*unstructured.Unstructured) admissionregistrationv1.MutatingWebhook {
	t.Helper()
	var found []admissionregistrationv1.MutatingWebhook
	for _, o := range objs {
		if o.GetKind() == "MutatingWebhookConfiguration" {
			var mwc admissionregistrationv1.MutatingWebhookConfiguration
			fromUnstructured(t, o, &mwc)
			found = append(found, mwc.Webhooks...)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one webhook in one MutatingWebhookConfiguration, got %d", len(found))
	}
	return found[0]
}
