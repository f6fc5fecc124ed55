package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/vault-injector/vault-injector/agentconfig"
	"github.com/vault-injector/vault-injector/patch"
	"github.com/vault-injector/vault-injector/policy"
)

// ReasonPolicy is the reason of pods the admission policy denies.
const ReasonPolicy = "policy"

// PolicySource gives the admission policy in force. (nil, true) means no policy; (nil, false)
// means a policy is configured but none has loaded yet, which denies every pod asking for
// injection (fail closed) rather than falling back to no policy.
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
	d := p.Evaluate(m.policyRequest(p, pod, ns, req.Agent))
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

// checkInjected holds a pod that arrives already injected to the policy: a reinvocation of one
// we injected passes, but a pod created with our status annotation and an agent config of its
// own would otherwise skip the policy. Its config must be one the policy allows, with exactly
// the path globs the webhook would have written.
func (m *Mutator) checkInjected(pod *patch.Pod, ns string) (*policy.Decision, error) {
	if m.Policy == nil {
		return nil, nil
	}
	p, loaded := m.Policy.Policy()
	if !loaded {
		return nil, errNoPolicyYet
	}
	if p == nil {
		return nil, nil
	}
	cfg, err := agentconfig.Parse([]byte(pod.Annotations()[agentconfig.AnnotationAgentConfig]))
	if err != nil {
		return nil, fmt.Errorf("policy: the pod carries %s but its %s is not a valid agent config: %w", agentconfig.AnnotationStatus, agentconfig.AnnotationAgentConfig, err)
	}
	d := p.Evaluate(m.policyRequest(p, pod, ns, cfg))
	if err := d.Err(); err != nil {
		return d, err
	}
	// Compared as the agent reads them: JSON, where an empty list and none are the same.
	want, _ := json.Marshal(d.PathRules)
	got, _ := json.Marshal(cfg.PathRules)
	if !bytes.Equal(want, got) {
		return d, errors.New("policy: the pod's agent config carries path rules the policy would not write: create the pod without vault-injector.io/status and let the webhook inject it")
	}
	return d, nil
}

// policyRequest is what the policy decides on for a pod.
func (m *Mutator) policyRequest(p *policy.Policy, pod *patch.Pod, ns string, cfg *agentconfig.Config) policy.Request {
	in := policy.Request{Namespace: ns, Config: cfg}
	if pod.Spec != nil {
		in.ServiceAccount = pod.Spec.ServiceAccountName
	}
	if m.NamespaceLabels != nil && p.UsesNamespaceSelector() {
		in.NamespaceLabels = m.NamespaceLabels(ns)
	}
	return in
}
