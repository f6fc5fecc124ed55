package policy

import (
	"fmt"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/vault-injector/vault-injector/agentconfig"
	"github.com/vault-injector/vault-injector/internal/glob"
)

// Request is what one pod asks for, as the policy sees it.
type Request struct {
	Namespace string
	// NamespaceLabels are the namespace's labels; nil when unknown (rules matching by
	// namespaceSelector then do not match).
	NamespaceLabels map[string]string
	// ServiceAccount is the pod's spec.serviceAccountName; empty means "default".
	ServiceAccount string
	Config         *agentconfig.Config
}

// Outcomes of a decision, per identity (the metrics label).
const (
	OutcomeAllowed = "allowed"
	OutcomeDenied  = "denied"
	OutcomeNoMatch = "no-match"
)

// IdentityDecision is the decision for one identity of the pod.
type IdentityDecision struct {
	Identity string
	// Matched are the rules whose match covers the pod's namespace and service account.
	Matched []string
	// AllowedBy are the matched rules that allow everything the identity asks for.
	AllowedBy []string
	// Refusals say, for each matched rule that did not allow the identity, why.
	Refusals []Refusal
}

// Allowed reports whether some rule allowed the identity.
func (d *IdentityDecision) Allowed() bool { return len(d.AllowedBy) > 0 }

// Refusal is why one rule did not allow one identity.
type Refusal struct {
	Rule    string
	Reasons []string
}

// Decision is the policy's answer for a pod.
type Decision struct {
	Request    Request
	Identities []IdentityDecision
	// PathRules are, for each allowed identity, the path globs of the rules that allowed it:
	// what the webhook writes into the agent config for the agent to enforce at render time.
	PathRules []agentconfig.PathRule
}

// Allowed reports whether every identity is allowed.
func (d *Decision) Allowed() bool {
	for i := range d.Identities {
		if !d.Identities[i].Allowed() {
			return false
		}
	}
	return true
}

// Err is nil for an allowed pod, else the *DenialError that explains it.
func (d *Decision) Err() error {
	if d.Allowed() {
		return nil
	}
	return &DenialError{d: d}
}

// Evaluate decides a pod's request. Every identity of the agent config is decided on its own
// (with its own secrets), so a pod with several identities needs a rule for each.
func (p *Policy) Evaluate(req Request) *Decision {
	if req.ServiceAccount == "" {
		req.ServiceAccount = "default"
	}
	d := &Decision{Request: req}
	var matched []int
	for i := range p.Rules {
		if p.matches(i, &req) {
			matched = append(matched, i)
		}
	}
	uses := map[string][]PathUse{}
	for i := range req.Config.Secrets {
		s := &req.Config.Secrets[i]
		uses[s.Identity] = append(uses[s.Identity], secretPaths(s)...)
	}
	if env := req.Config.Env; env != nil {
		for i := range env.Vars {
			v := &env.Vars[i]
			uses[v.Identity] = append(uses[v.Identity], envPaths(v)...)
		}
	}
	for _, id := range req.Config.Identities {
		idd := IdentityDecision{Identity: id.Name}
		for _, i := range matched {
			r := &p.Rules[i]
			idd.Matched = append(idd.Matched, r.Name)
			reasons := r.refuse(&id, req.Config, uses[id.Name])
			if len(reasons) == 0 {
				idd.AllowedBy = append(idd.AllowedBy, r.Name)
				d.PathRules = append(d.PathRules, r.Allow.pathRule(r.Name, id.Name))
				continue
			}
			idd.Refusals = append(idd.Refusals, Refusal{Rule: r.Name, Reasons: reasons})
		}
		d.Identities = append(d.Identities, idd)
	}
	return d
}

// matches reports whether rule i applies to the pod's namespace and service account.
func (p *Policy) matches(i int, req *Request) bool {
	m := &p.Rules[i].Match
	ns := glob.MatchAny(m.Namespaces, req.Namespace)
	if !ns && p.selectors[i] != nil && req.NamespaceLabels != nil {
		ns = p.selectors[i].Matches(labels.Set(req.NamespaceLabels))
	}
	if !ns {
		return false
	}
	return len(m.ServiceAccounts) == 0 || glob.MatchAny(m.ServiceAccounts, req.ServiceAccount)
}

// identityCheck is one field of an identity that a rule must allow.
type identityCheck struct {
	what    string
	value   func(*agentconfig.Identity) string
	allowed func(*Allow) []string
}

var identityChecks = []identityCheck{
	{"role", func(id *agentconfig.Identity) string { return id.Role }, func(a *Allow) []string { return a.Roles }},
	{"auth path", func(id *agentconfig.Identity) string { return id.AuthPath }, func(a *Allow) []string { return a.AuthPaths }},
	{"auth type", func(id *agentconfig.Identity) string { return id.Method }, (*Allow).authTypes},
	{"address", func(id *agentconfig.Identity) string { return id.Address }, func(a *Allow) []string { return a.Addresses }},
	{"Vault namespace", func(id *agentconfig.Identity) string { return id.Namespace }, (*Allow).vaultNamespaces},
}

// refuse lists why rule r does not allow identity id with its path uses; none means it does.
func (r *Rule) refuse(id *agentconfig.Identity, cfg *agentconfig.Config, uses []PathUse) []string {
	var reasons []string
	for _, c := range identityChecks {
		v, allowed := c.value(id), c.allowed(&r.Allow)
		if !glob.MatchAny(allowed, v) {
			reasons = append(reasons, fmt.Sprintf("%s %s not in rule %s (allows %s)", c.what, quoteEmpty(v), r.Name, list(allowed)))
		}
	}
	if id.TLSSkipVerify && !r.Allow.TLSSkipVerify {
		reasons = append(reasons, fmt.Sprintf("tls-skip-verify not allowed by rule %s", r.Name))
	}
	if cfg.Notify != nil && len(cfg.Notify.Command) > 0 && !r.Allow.NotifyCommand {
		reasons = append(reasons, fmt.Sprintf("notify-command not allowed by rule %s", r.Name))
	}
	pr := r.Allow.pathRule(r.Name, id.Name)
	for _, u := range uses {
		if err := agentconfig.CheckPathSegments(u.Path); err != nil {
			reasons = append(reasons, fmt.Sprintf("%s: path %s: %v", u.Output, u.Path, err))
			continue
		}
		globs := pr.Globs(u.Op)
		if !glob.MatchAny(globs, u.Path) {
			reasons = append(reasons, fmt.Sprintf("%s: %s of %s not in rule %s (allows %s)", u.Output, u.Op, u.Path, r.Name, list(globs)))
		}
	}
	return reasons
}

// RuleOutcome is one count of the decisions metric.
type RuleOutcome struct{ Rule, Outcome string }

// Outcomes are the decision's counts per identity: the first rule that allowed it, each rule
// that matched and refused it, or no rule at all.
func (d *Decision) Outcomes() []RuleOutcome {
	var out []RuleOutcome
	for _, idd := range d.Identities {
		switch {
		case idd.Allowed():
			out = append(out, RuleOutcome{idd.AllowedBy[0], OutcomeAllowed})
		case len(idd.Matched) == 0:
			out = append(out, RuleOutcome{"", OutcomeNoMatch})
		default:
			for _, r := range idd.Refusals {
				out = append(out, RuleOutcome{r.Rule, OutcomeDenied})
			}
		}
	}
	return out
}
