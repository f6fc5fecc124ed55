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
			AuthPath:        agentconfig.DefaultKubernetesAuthPath,
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

// TypicalPod is a typical Deployment-created pod asking for two secrets and a template.
const TypicalPod = `{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"api-7c9f8d6b5-","namespace":"shop","labels":{"app":"api","pod-template-hash":"7c9f8d6b5"},
"annotations":{"vault-injector.io/role":"api","vault-injector.io/secret-db":"database/creds/api","vault-injector.io/secret-config":"secret/data/api/config",
"vault-injector.io/template-app.env":"{{ with secret \"secret/data/api/config\" }}{{ range $k, $v := .Data.data }}{{ $k }}={{ $v }}\n{{ end }}{{ end }}"},
"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"api-7c9f8d6b5","uid":"6a1f0c1e-2b3d-4e5f-8a9b-0c1d2e3f4a5b","controller":true,"blockOwnerDeletion":true}]},
"spec":{"serviceAccountName":"api","containers":[{"name":"api","image":"registry.example/api:3.2.1","ports":[{"containerPort":8080,"protocol":"TCP"}],
"env":[{"name":"LOG_LEVEL","value":"info"},{"name":"POD_NAME","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}],
"resources":{"requests":{"cpu":"100m","memory":"128Mi"},"limits":{"memory":"256Mi"}},
"readinessProbe":{"httpGet":{"path":"/ready","port":8080},"periodSeconds":5},
"volumeMounts":[{"name":"kube-api-access-abcde","mountPath":"/var/run/secrets/kubernetes.io/serviceaccount","readOnly":true}]}],
"volumes":[{"name":"kube-api-access-abcde","projected":{"sources":[{"serviceAccountToken":{"expirationSeconds":3607,"path":"token"}},{"configMap":{"name":"kube-root-ca.crt","items":[{"key":"ca.crt","path":"ca.crt"}]}}]}}],
"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","securityContext":{},"schedulerName":"default-scheduler",
"tolerations":[{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}]}}`
