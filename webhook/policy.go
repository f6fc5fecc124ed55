package webhook

import (
	"errors"
	"fmt"

	"github.com/vault-injector/vault-injector/agentconfig"
	"github.com/vault-injector/vault-injector/patch"
	"github.com/vault-injector/vault-injector/policy"
)

// ReasonPolicy is the reason of pods the admission policy denies.
const ReasonPolicy = "policy"

// PolicySource gives the admission policy in force. Loaded reports whether one is: nil with
// Loaded true never happens; nil with Loaded false means "a policy is configured but none has
// loaded yet", which denies every pod asking for injection (fail closed) rather than falling
// back to no policy.
type PolicySource interface {
	Policy() (p *policy.Policy, loaded bool)
}

// StaticPolicy is a PolicySource that never changes (the offline `inject --policy`).
type StaticPolicy struct{ P *policy.Policy }

func (s StaticPolicy) Policy() (*policy.Policy, bool) { return s.P, true }

// NamespaceLabels returns a namespace's labels for policy rules that match by
// namespaceSelector; nil means unknown.
type NamespaceLabels func(ns string) map[string]string

var errNoPolicyYet = errors.New("policy: the webhook has not loaded a valid policy yet; it retries, and the pod can be created again in a few seconds")

// applyPolicy decides req under the policy in force. An allowed request gets the path globs of
// the rules that allowed it written into its agent config, as a copy: memoised requests are
// shared by pods of other namespaces and service accounts.
func (m *Mutator) applyPolicy(pod *patch.Pod, ns string, req *agentconfig.Request) (*agentconfig.Request, *policy.Decision, error) {
	if m.Policy == nil {
		return req, nil, nil
	}
	p, loaded := m.Policy.Policy()
	if !loaded {
		return nil, nil, errNoPolicyYet
	}
	if p == nil {
		return req, nil, nil
	}
	in := policy.Request{Namespace: ns, Config: req.Agent}
	if pod.Spec != nil {
		in.ServiceAccount = pod.Spec.ServiceAccountName
	}
	if m.NamespaceLabels != nil && p.UsesNamespaceSelector() {
		in.NamespaceLabels = m.NamespaceLabels(ns)
	}
	d := p.Evaluate(in)
	if err := d.Err(); err != nil {
		return nil, d, err
	}
	cfg := *req.Agent
	cfg.PathRules = d.PathRules
	if err := cfg.Validate(); err != nil {
		return nil, d, fmt.Errorf("policy: path globs for the agent: %w", err)
	}
	out := *req
	out.Agent, out.AgentJSON = &cfg, nil
	return &out, d, nil
}
