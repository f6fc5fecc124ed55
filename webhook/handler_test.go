package webhook_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"

	"github.com/vault-injector/vault-injector/webhook"
	"github.com/vault-injector/vault-injector/webhook/webhooktest"
)

const annotatedPod = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"app","annotations":{"vault-injector.io/role":"r","vault-injector.io/secret-a":"secret/a"}},"spec":{"containers":[{"name":"app","image":"x"}]}}`

func newRouter(t *testing.T) (http.Handler, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := &webhook.Server{
		Handler:  &webhook.Handler{Mutator: webhooktest.Mutator(), Log: log, Metrics: webhook.NewMetrics(reg)},
		Registry: reg,
		Log:      log,
	}
	return s.Router(), reg
}

func post(h http.Handler, contentType, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/mutate", strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestMalformedRequests(t *testing.T) {
	h, reg := newRouter(t)
	valid := string(webhooktest.ReviewBody("default", []byte(annotatedPod)))
	for _, tc := range []struct {
		name, contentType, body string
		status                  int
		msg                     string
	}{
		{"not json", "application/json", "{", 400, "decode AdmissionReview"},
		{"wrong content type", "text/plain", valid, 415, "expected application/json"},
		{"no content type", "", valid, 415, "content type"},
		{"wrong kind", "application/json", `{"apiVersion":"admission.k8s.io/v1","kind":"Pod"}`, 400, "expected kind AdmissionReview"},
		{"wrong version", "application/json", `{"apiVersion":"admission.k8s.io/v2","kind":"AdmissionReview","request":{"uid":"u"}}`, 400, "apiVersion"},
		{"no request", "application/json", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, 400, "no request"},
		{"no uid", "application/json", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"kind":{"kind":"Pod"},"operation":"CREATE","object":{}}}`, 400, "no uid"},
		{"no object", "application/json", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"kind":"Pod","version":"v1"},"operation":"CREATE"}}`, 400, "no object"},
		{"pod is not an object", "application/json", string(webhooktest.ReviewBody("team", []byte(`[1,2]`))), 400, "unmarshal JSON array into Go patch.Pod"},
		{"too large", "application/json", `{"apiVersion":"` + strings.Repeat("a", webhook.MaxBodyBytes) + `"}`, 413, "exceeds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := post(h, tc.contentType, tc.body)
			if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.msg) {
				t.Errorf("got %d %q, want %d containing %q", rec.Code, rec.Body, tc.status, tc.msg)
			}
		})
	}
	if got := testutil.ToFloat64(mustCounter(t, reg, "error", "bad-request")); got < 5 {
		t.Errorf("error/bad-request counter = %v, want >= 5", got)
	}
	req := httptest.NewRequest(http.MethodGet, "/mutate", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET /mutate: %d, want 405", rec.Code)
	}
}

func mustCounter(t *testing.T, reg *prometheus.Registry, outcome, reason string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "vault_injector_admission_requests_total" {
			continue
		}
		for _, m := range mf.Metric {
			labels := map[string]string{}
			for _, l := range m.Label {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["outcome"] == outcome && labels["reason"] == reason {
				return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "x"}, func() float64 { return m.Counter.GetValue() })
			}
		}
	}
	t.Fatalf("no sample for outcome=%s reason=%s", outcome, reason)
	return nil
}

func TestDecisionsAndMetrics(t *testing.T) {
	h, reg := newRouter(t)
	for _, tc := range []struct {
		name, ns, pod string
		allowed       bool
		patched       bool
		outcome       string
		reason        string
	}{
		{"injected", "team", annotatedPod, true, true, "injected", ""},
		{"kube-system", "kube-system", annotatedPod, true, false, "skipped", webhook.ReasonExcludedNamespace},
		{"opted out", "team", strings.Replace(annotatedPod, `"vault-injector.io/role":"r"`, `"vault-injector.io/role":"r","vault-injector.io/inject":"false"`, 1), true, false, "skipped", webhook.ReasonOptedOut},
		{"plain", "team", `{"metadata":{"name":"p"},"spec":{"containers":[{"name":"a"}]}}`, true, false, "skipped", webhook.ReasonNothingRequested},
		{"bad mode", "team", strings.Replace(annotatedPod, `"vault-injector.io/role":"r"`, `"vault-injector.io/role":"r","vault-injector.io/mode":"x"`, 1), false, false, "denied", webhook.ReasonInvalidAnnotation},
		{"no containers", "team", `{"metadata":{"annotations":{"vault-injector.io/role":"r","vault-injector.io/secret-a":"a"}},"spec":{}}`, false, false, "denied", webhook.ReasonConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := webhooktest.Review(t, h, tc.ns, []byte(tc.pod))
			if resp.Allowed != tc.allowed || (len(resp.Patch) > 0) != tc.patched {
				t.Fatalf("allowed=%v patch=%d bytes, want allowed=%v patched=%v (%v)", resp.Allowed, len(resp.Patch), tc.allowed, tc.patched, resp.Result)
			}
			if !tc.allowed && (resp.Result == nil || resp.Result.Code != 403 || !strings.Contains(resp.Result.Message, "not injected")) {
				t.Errorf("denial without a clear 403 message: %+v", resp.Result)
			}
			if got := testutil.ToFloat64(mustCounter(t, reg, tc.outcome, tc.reason)); got < 1 {
				t.Errorf("counter %s/%s not incremented", tc.outcome, tc.reason)
			}
		})
	}
}

// The API server may still speak v1beta1: the answer must use the version asked.
func TestAnswersInVersionAsked(t *testing.T) {
	h, _ := newRouter(t)
	body := bytes.Replace(webhooktest.ReviewBody("team", []byte(annotatedPod)), []byte("admission.k8s.io/v1"), []byte("admission.k8s.io/v1beta1"), 1)
	rec := post(h, "application/json", string(body))
	var out struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Response   struct {
			UID     string `json:"uid"`
			Allowed bool   `json:"allowed"`
		} `json:"response"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if out.APIVersion != "admission.k8s.io/v1beta1" || out.Kind != "AdmissionReview" || !out.Response.Allowed || out.Response.UID == "" {
		t.Errorf("got %s", rec.Body)
	}
}

func TestNonPodAndNonCreatePassUntouched(t *testing.T) {
	h, _ := newRouter(t)
	for _, repl := range [][2]string{{`"operation":"CREATE"`, `"operation":"UPDATE"`}, {`"kind":"Pod"`, `"kind":"Deployment"`}} {
		body := strings.Replace(string(webhooktest.ReviewBody("team", []byte(annotatedPod))), repl[0], repl[1], 1)
		rec := post(h, "application/json", body)
		if rec.Code != 200 || strings.Contains(rec.Body.String(), `"patch"`) || !strings.Contains(rec.Body.String(), `"allowed":true`) {
			t.Errorf("%s: got %d %s", repl[1], rec.Code, rec.Body)
		}
	}
}

// The patch for a pod without volumes, init containers or annotations creates each of them.
func TestPatchOnBarePod(t *testing.T) {
	h, _ := newRouter(t)
	raw := []byte(annotatedPod)
	resp := webhooktest.Review(t, h, "team", raw)
	p, err := jsonpatch.DecodePatch(resp.Patch)
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Apply(raw)
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if err := json.Unmarshal(out, &pod); err != nil {
		t.Fatal(err)
	}
	if len(pod.Spec.InitContainers) != 1 || len(pod.Spec.Volumes) != 4 || len(pod.Spec.Containers[0].VolumeMounts) != 1 {
		t.Errorf("unexpected injected pod: %d init, %d volumes, %d mounts", len(pod.Spec.InitContainers), len(pod.Spec.Volumes), len(pod.Spec.Containers[0].VolumeMounts))
	}
}

func TestHealthAndMetricsEndpoints(t *testing.T) {
	h, _ := newRouter(t)
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != 200 {
			t.Errorf("GET %s: %d", path, rec.Code)
		}
	}
}
