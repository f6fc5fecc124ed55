package webhook_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/vault-injector/vault-injector/webhook"
	"github.com/vault-injector/vault-injector/webhook/webhooktest"
)

// BenchmarkMutate measures the decision and patch for a typical pod, without HTTP.
func BenchmarkMutate(b *testing.B) {
	m := webhooktest.Mutator()
	raw := []byte(webhooktest.TypicalPod)
	b.ReportAllocs()
	for b.Loop() {
		if res := m.Mutate(raw, "shop"); res.Outcome != webhook.Injected {
			b.Fatal(res.Err)
		}
	}
}

// BenchmarkHandler adds the AdmissionReview decode and encode.
func BenchmarkHandler(b *testing.B) {
	h := (&webhook.Server{Handler: &webhook.Handler{Mutator: webhooktest.Mutator(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, Log: slog.Default()}).Router()
	body := webhooktest.ReviewBody("shop", []byte(webhooktest.TypicalPod))
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/mutate", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Body)
		}
	}
}

// BenchmarkBaseline is the do-nothing webhook `make bench` compares with (see
// hack/loadtest/baseline), in process: decode the review and the pod into k8s.io/api types,
// answer allowed.
func BenchmarkBaseline(b *testing.B) {
	body := webhooktest.ReviewBody("shop", []byte(webhooktest.TypicalPod))
	b.ReportAllocs()
	for b.Loop() {
		var rv admissionv1.AdmissionReview
		if err := json.NewDecoder(bytes.NewReader(body)).Decode(&rv); err != nil {
			b.Fatal(err)
		}
		var pod corev1.Pod
		if err := json.Unmarshal(rv.Request.Object.Raw, &pod); err != nil {
			b.Fatal(err)
		}
		rv.Response = &admissionv1.AdmissionResponse{UID: rv.Request.UID, Allowed: true}
		rv.Request = nil
		if _, err := json.Marshal(&rv); err != nil {
			b.Fatal(err)
		}
	}
}
