package webhook_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vault-injector/vault-injector/webhook"
	"github.com/vault-injector/vault-injector/webhook/webhooktest"
)

func newLimitedRouter(t *testing.T, l webhook.Limits) (http.Handler, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := &webhook.Server{Handler: &webhook.Handler{Mutator: webhooktest.Mutator(), Log: log, Metrics: webhook.NewMetrics(reg), Limits: l}, Log: log}
	return s.Router(), reg
}

// stalledBody is a request body that holds its request in flight: it reports the first read
// (the request has passed the caps) and then waits to be released.
type stalledBody struct {
	body    io.Reader
	reading chan struct{}
	release chan struct{}
	once    sync.Once
}

func newStalledBody(body []byte) *stalledBody {
	return &stalledBody{body: bytes.NewReader(body), reading: make(chan struct{}), release: make(chan struct{})}
}

func (s *stalledBody) Read(p []byte) (int, error) {
	s.once.Do(func() { close(s.reading); <-s.release })
	return s.body.Read(p)
}

// serve sends a request with the given body and declared length.
func serve(h http.Handler, body io.Reader, length int64) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/mutate", body)
	req.Header.Set("Content-Type", "application/json")
	req.ContentLength = length
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// Beyond the caps (requests, or declared bytes) a request is answered 429 with Retry-After: 1
// at once, without its body being read; requests that fit are served, and finished requests
// give their room back.
func TestInFlightCaps(t *testing.T) {
	review := webhooktest.ReviewBody("shop", []byte(annotatedPod))
	for _, tc := range []struct {
		name    string
		limits  webhook.Limits
		stalled []int64 // declared lengths of the requests held in flight
		next    int64   // declared length of the next request
		want    int
	}{
		{"request cap reached", webhook.Limits{MaxInFlight: 2}, []int64{int64(len(review)), int64(len(review))}, int64(len(review)), http.StatusTooManyRequests},
		{"under the request cap", webhook.Limits{MaxInFlight: 3}, []int64{int64(len(review)), int64(len(review))}, int64(len(review)), http.StatusOK},
		{"byte budget reached", webhook.Limits{MaxInFlightBytes: webhook.MaxBodyBytes}, []int64{3 << 20}, 2 << 20, http.StatusTooManyRequests},
		{"unknown length counts as the body cap", webhook.Limits{MaxInFlightBytes: webhook.MaxBodyBytes}, []int64{3 << 20}, -1, http.StatusTooManyRequests},
		{"small request within the byte budget", webhook.Limits{MaxInFlightBytes: webhook.MaxBodyBytes}, []int64{3 << 20}, int64(len(review)), http.StatusOK},
		{"default request cap", webhook.Limits{}, slices.Repeat([]int64{int64(len(review))}, webhook.DefaultMaxInFlight), int64(len(review)), http.StatusTooManyRequests},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, reg := newLimitedRouter(t, tc.limits)
			var wg sync.WaitGroup
			var held []*stalledBody
			for _, n := range tc.stalled {
				b := newStalledBody(review)
				held = append(held, b)
				wg.Add(1)
				go func() {
					defer wg.Done()
					// The declared length is only what the caps weigh; the stalled body is
					// served as far as it goes.
					_ = serve(h, b, n)
				}()
				<-b.reading
			}
			t.Cleanup(func() {
				for _, b := range held {
					close(b.release)
				}
				wg.Wait()
			})
			next := newStalledBody(review)
			close(next.release)
			rec := serve(h, next, tc.next)
			if rec.Code != tc.want {
				t.Fatalf("status %d (%.200s), want %d", rec.Code, rec.Body, tc.want)
			}
			if tc.want != http.StatusTooManyRequests {
				return
			}
			if got := rec.Header().Get("Retry-After"); got != "1" {
				t.Errorf("Retry-After %q, want 1 (client-go retries a 429 only with it)", got)
			}
			checkRefusedUnread(t, reg, next, "too-many-in-flight")
		})
	}
}

// Finished requests, whatever their answer, give their room back.
func TestInFlightCapsAreReleased(t *testing.T) {
	h, _ := newLimitedRouter(t, webhook.Limits{MaxInFlight: 1})
	review := webhooktest.ReviewBody("shop", []byte(annotatedPod))
	for i, body := range []string{string(review), "{", string(review), `{"apiVersion":"` + strings.Repeat("a", webhook.MaxBodyBytes) + `"}`, string(review)} {
		rec := serve(h, strings.NewReader(body), -1)
		if rec.Code == http.StatusTooManyRequests {
			t.Fatalf("request %d: 429 with nothing else in flight", i)
		}
	}
}

// A body that declares more than the cap is refused with 413 before any of it is read.
func TestDeclaredOversizeBodyIsNotRead(t *testing.T) {
	h, reg := newLimitedRouter(t, webhook.Limits{})
	b := newStalledBody([]byte("{}"))
	close(b.release)
	rec := serve(h, b, webhook.MaxBodyBytes+1)
	if rec.Code != http.StatusRequestEntityTooLarge || !strings.Contains(rec.Body.String(), "exceeds") {
		t.Fatalf("status %d %q, want 413", rec.Code, rec.Body)
	}
	checkRefusedUnread(t, reg, b, "too-large")
}

// checkRefusedUnread: the refused request's body was never read, and the refusal was counted
// once under reason.
func checkRefusedUnread(t *testing.T, reg *prometheus.Registry, b *stalledBody, reason string) {
	t.Helper()
	select {
	case <-b.reading:
		t.Error("the refused request's body was read")
	default:
	}
	if got := testutil.ToFloat64(mustCounter(t, reg, "error", reason)); got != 1 {
		t.Errorf("error/%s counter = %v, want 1", reason, got)
	}
}
