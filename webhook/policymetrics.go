package webhook

import (
	"github.com/prometheus/client_golang/prometheus"
)

func newPolicyDecisions() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vault_injector_policy_decisions_total",
		Help: "Admission-policy decisions per pod identity, by rule and outcome: allowed (the first rule that allowed it), denied (each matching rule that refused it), no-match (rule empty), not-loaded (a policy is configured but none has loaded yet).",
	}, []string{"rule", "outcome"})
}

// outcomeNotLoaded counts pods denied because a policy is configured but none has loaded.
const outcomeNotLoaded = "not-loaded"

// observePolicy counts a pod's policy decisions.
func (m *Metrics) observePolicy(res *Result) {
	if m == nil {
		return
	}
	if res.Policy == nil {
		if res.Reason == ReasonPolicy {
			m.policy.WithLabelValues("", outcomeNotLoaded).Inc()
		}
		return
	}
	for _, o := range res.Policy.Outcomes() {
		m.policy.WithLabelValues(o.Rule, o.Outcome).Inc()
	}
}
