package webhook_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
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

// distinctBodies are typical reviews that differ in one secret path each: more than the
// annotation memo holds, so cycling through them parses and encodes every request.
func distinctBodies(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		pod := strings.Replace(webhooktest.TypicalPod, `"secret/data/api/config"`, `"secret/data/api/config-`+strconv.Itoa(i)+`"`, 1)
		out[i] = webhooktest.ReviewBody("shop", []byte(pod))
	}
	return out
}

// BenchmarkHandlerDistinct is BenchmarkHandler with a different pod on every request, as many
// Deployments or a rollout send: the memo cannot hide the parse and build.
func BenchmarkHandlerDistinct(b *testing.B) {
	h := (&webhook.Server{Handler: &webhook.Handler{Mutator: webhooktest.Mutator(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, Log: slog.Default()}).Router()
	bodies := distinctBodies(4096)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/mutate", bytes.NewReader(bodies[i%len(bodies)]))
		i++
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Body)
		}
	}
}
