package webhook

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the webhook's Prometheus series.
type Metrics struct {
	requests *prometheus.CounterVec
	duration prometheus.Histogram
	// policy counts admission-policy decisions (policymetrics.go).
	policy *prometheus.CounterVec
}

// NewMetrics registers the series on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vault_injector_admission_requests_total",
			Help: "Admission requests by outcome (injected, skipped, denied, error) and reason.",
		}, []string{"outcome", "reason"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vault_injector_admission_duration_seconds",
			Help:    "Time to handle one admission request, from reading the body to writing the answer.",
			Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5},
		}),
	}
	m.policy = newPolicyDecisions()
	reg.MustRegister(m.requests, m.duration, m.policy)
	return m
}

func (m *Metrics) observe(o Outcome, reason string, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(string(o), reason).Inc()
	m.duration.Observe(d.Seconds())
}

// reject counts a request refused before it was read (too large, too many in flight); its
// time is not an admission's, so it stays out of the duration histogram.
func (m *Metrics) reject(reason string) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(string(outcomeError), reason).Inc()
}
