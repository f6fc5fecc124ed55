package webhook_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

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
