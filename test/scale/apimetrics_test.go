//go:build scale

package scale

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The API server's own admission-webhook metrics: what it measured calling the webhooks.
const (
	durationMetric  = "apiserver_admission_webhook_admission_duration_seconds"
	requestMetric   = "apiserver_admission_webhook_request_total"
	rejectionMetric = "apiserver_admission_webhook_rejection_count"
)

type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// apiMetrics is one scrape of the API server's /metrics, read through the admin client.
type apiMetrics []sample

func scrapeAPIServer(t *testing.T) apiMetrics {
	t.Helper()
	b, err := node.Client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		t.Fatalf("GET /metrics of the API server: %v", err)
	}
	var out apiMetrics
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "apiserver_admission_webhook_") {
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out = append(out, s)
	}
	return out
}

// parseSample reads `name{k="v",...} value` (the text exposition format; no timestamps here).
func parseSample(line string) (sample, error) {
	s := sample{labels: map[string]string{}}
	rest := line
	if i := strings.IndexAny(line, "{ "); i >= 0 {
		s.name, rest = line[:i], line[i:]
	}
	if strings.HasPrefix(rest, "{") {
		rest = rest[1:]
		for !strings.HasPrefix(rest, "}") {
			k, after, ok := strings.Cut(rest, "=")
			if !ok {
				return s, fmt.Errorf("label without =")
			}
			q, err := strconv.QuotedPrefix(after)
			if err != nil {
				return s, err
			}
			s.labels[k], _ = strconv.Unquote(q)
			rest = strings.TrimPrefix(after[len(q):], ",")
		}
		rest = rest[1:]
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
	s.value = v
	return s, err
}

// sum adds the samples of name whose labels all have the wanted values (a value may be one of
// several: "a|b").
func (m apiMetrics) sum(name string, want map[string]string) float64 {
	total := 0.0
	for _, s := range m {
		if s.name == name && matches(s.labels, want) {
			total += s.value
		}
	}
	return total
}

func matches(labels, want map[string]string) bool {
	for k, v := range want {
		if !slices.Contains(strings.Split(v, "|"), labels[k]) {
			return false
		}
	}
	return true
}

// buckets is the cumulative count per upper bound of a histogram, summed over matching series.
func (m apiMetrics) buckets(name string, want map[string]string) map[float64]float64 {
	out := map[float64]float64{}
	for _, s := range m {
		if s.name == name+"_bucket" && matches(s.labels, want) {
			le, _ := strconv.ParseFloat(s.labels["le"], 64) // "+Inf" parses as +Inf
			out[le] += s.value
		}
	}
	return out
}

// bucketShares is the histogram between two scrapes as the share of calls per bucket, and
// the buckets holding the median and the 99th percentile: the API server's buckets are coarse
// (5 ms, 25 ms, 100 ms, ...), so a percentile is known only as a bucket.
type bucketShares struct {
	count    float64
	bounds   []float64
	shares   []float64
	p50, p99 string
}

func histogramDelta(before, after apiMetrics, want map[string]string) bucketShares {
	b0, b1 := before.buckets(durationMetric, want), after.buckets(durationMetric, want)
	var h bucketShares
	for le := range b1 {
		h.bounds = append(h.bounds, le)
	}
	slices.Sort(h.bounds)
	if len(h.bounds) == 0 {
		return h
	}
	h.count = b1[math.Inf(1)] - b0[math.Inf(1)]
	prev, prevLE := 0.0, 0.0
	for _, le := range h.bounds {
		cum := b1[le] - b0[le]
		share := 0.0
		if h.count > 0 {
			share = (cum - prev) / h.count
		}
		h.shares = append(h.shares, share)
		if h.p50 == "" && cum >= 0.5*h.count {
			h.p50 = bucketName(prevLE, le)
		}
		if h.p99 == "" && cum >= 0.99*h.count {
			h.p99 = bucketName(prevLE, le)
		}
		prev, prevLE = cum, le
	}
	return h
}

func bucketName(lo, hi float64) string {
	ms := func(s float64) string { return strconv.FormatFloat(s*1000, 'f', -1, 64) + "ms" }
	if math.IsInf(hi, 1) {
		return "> " + ms(lo)
	}
	return "(" + ms(lo) + ", " + ms(hi) + "]"
}

func (h bucketShares) String() string {
	var parts []string
	lo := 0.0
	for i, le := range h.bounds {
		if h.shares[i] > 0 {
			parts = append(parts, fmt.Sprintf("%s %.1f%%", bucketName(lo, le), 100*h.shares[i]))
		}
		lo = le
	}
	return fmt.Sprintf("%.0f calls: %s; p50 in %s, p99 in %s", h.count, strings.Join(parts, ", "), h.p50, h.p99)
}
