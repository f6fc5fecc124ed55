// Package webhooktest holds what tests of the admission path share: fixed operator settings
// and a helper that sends a pod through /mutate as the API server would.
package webhooktest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/vault-injector/vault-injector/agentconfig"
	"github.com/vault-injector/vault-injector/patch"
	"github.com/vault-injector/vault-injector/webhook"
)

// Mutator returns the settings golden files are written with.
func Mutator() *webhook.Mutator {
	return &webhook.Mutator{
		Defaults: agentconfig.Defaults{
			Address:         "https://vault.vault.svc:8200",
			AuthPath:        "auth/kubernetes",
			RefreshInterval: 5 * time.Minute,
			SecretsPath:     agentconfig.SecretsDir,
		},
		Settings: patch.Settings{
			AgentImage:             "ghcr.io/vault-injector/vault-injector:test",
			ImagePullPolicy:        corev1.PullIfNotPresent,
			Style:                  patch.StyleNative,
			TokenAudience:          "vault",
			TokenExpirationSeconds: 600,
			Resources:              patch.DefaultResources(),
			RunAsUser:              65532,
		},
		ExcludedNamespaces: webhook.DefaultExcludedNamespaces,
	}
}

// ReviewBody wraps a pod in an AdmissionReview v1 for CREATE in namespace ns.
func ReviewBody(ns string, pod []byte) []byte {
	body, _ := json.Marshal(map[string]any{
		"apiVersion": "admission.k8s.io/v1",
		"kind":       "AdmissionReview",
		"request": map[string]any{
			"uid":       "0c9c4b1e-7b9a-4f5e-9d6b-2f0f1d2e3a4b",
			"kind":      map[string]string{"group": "", "version": "v1", "kind": "Pod"},
			"resource":  map[string]string{"group": "", "version": "v1", "resource": "pods"},
			"namespace": ns,
			"operation": "CREATE",
			"object":    json.RawMessage(pod),
		},
	})
	return body
}

// Review posts the pod to h's /mutate and returns the response, failing t on anything but a
// well-formed 200 answer.
func Review(t testing.TB, h http.Handler, ns string, pod []byte) *admissionv1.AdmissionResponse {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/mutate", bytes.NewReader(ReviewBody(ns, pod)))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("POST /mutate: %d %s", rec.Code, rec.Body)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("decode AdmissionReview: %v", err)
	}
	if out.Response == nil || out.Response.UID != "0c9c4b1e-7b9a-4f5e-9d6b-2f0f1d2e3a4b" {
		t.Fatalf("response does not answer the request: %s", rec.Body)
	}
	return out.Response
}
