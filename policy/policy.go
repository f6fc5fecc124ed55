// Package policy owns the operator's admission policy: which namespaces and service accounts
// may use which Vault roles, auth mounts and types, addresses, Vault namespaces and paths. It
// parses and validates the policy file (parse.go), decides for one pod's agent config, one
// identity at a time (evaluate.go), explains a denial naming the rules that matched and why
// each did not allow the request (explain.go), and finds the literal paths of inline templates
// (templatepaths.go). It does no I/O: the webhook's loader and the CLI feed it bytes.
package policy

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// APIVersion and Kind head every policy file, so a file meant for something else is refused.
const (
	APIVersion = "vault-injector.io/v1alpha1"
	Kind       = "InjectionPolicy"
)

// Policy is a parsed, validated policy. The zero of a *Policy (nil) means "no policy": every
// pod is decided as without one.
type Policy struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Rules      []Rule `json:"rules"`

	// selectors are the compiled namespace selectors, by rule index.
	selectors []labels.Selector
}

// Rule gives the pods it matches what it allows.
type Rule struct {
	Name  string `json:"name"`
	Match Match  `json:"match"`
	Allow Allow  `json:"allow"`
}

// Match says which pods a rule applies to. Namespaces and NamespaceSelector are alternatives
// (a pod matches if either does); ServiceAccounts narrows further. An AdmissionReview carries no
// namespace labels, so NamespaceSelector needs the webhook to read namespaces (opt-in).
type Match struct {
	Namespaces        []string              `json:"namespaces,omitempty"`
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// ServiceAccounts are globs; empty means any.
	ServiceAccounts []string `json:"serviceAccounts,omitempty"`
}

// Allow is what a matching rule lets an identity use. Lists are globs.
type Allow struct {
	// Roles, AuthPaths and Addresses are required: a rule names what it allows.
	Roles     []string `json:"roles"`
	AuthPaths []string `json:"authPaths"`
	Addresses []string `json:"addresses"`
	// AuthTypes defaults to ["kubernetes"].
	AuthTypes []string `json:"authTypes,omitempty"`
	// VaultNamespaces defaults to the root namespace only ("").
	VaultNamespaces []string `json:"vaultNamespaces,omitempty"`
	Paths           Paths    `json:"paths"`
	// TLSSkipVerify and NotifyCommand are refused unless allowed.
	TLSSkipVerify bool `json:"tlsSkipVerify,omitempty"`
	NotifyCommand bool `json:"notifyCommand,omitempty"`
}

// Paths are Vault path globs per operation (agentconfig.Operation).
type Paths struct {
	Read     []string `json:"read,omitempty"`
	Write    []string `json:"write,omitempty"`
	PKIIssue []string `json:"pkiIssue,omitempty"`
}

// UsesNamespaceSelector reports whether deciding needs the namespace's labels.
func (p *Policy) UsesNamespaceSelector() bool {
	if p == nil {
		return false
	}
	for _, r := range p.Rules {
		if r.Match.NamespaceSelector != nil {
			return true
		}
	}
	return false
}

// RuleNames lists the rules in order (metrics and messages).
func (p *Policy) RuleNames() []string {
	if p == nil {
		return nil
	}
	names := make([]string, len(p.Rules))
	for i, r := range p.Rules {
		names[i] = r.Name
	}
	return names
}
