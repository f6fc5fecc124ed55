package policy

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/vault-injector/vault-injector/agentconfig"
	"github.com/vault-injector/vault-injector/internal/glob"
)

// MaxBytes caps a policy file: it is held in a ConfigMap (1 MiB at most) and decided on every
// admission.
const MaxBytes = 1 << 20

// ruleName is what a rule's name may be: it appears in metrics labels and messages.
var ruleName = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$`)

// Parse reads a policy file (YAML or JSON) and validates it. Unknown fields are errors, so a
// misspelt key never silently allows or denies less than the operator wrote.
func Parse(data []byte) (*Policy, error) {
	if len(data) > MaxBytes {
		return nil, fmt.Errorf("policy is %d bytes: expected at most %d", len(data), MaxBytes)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("policy is empty: expected apiVersion " + APIVersion + ", kind " + Kind + " and rules")
	}
	var p Policy
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		return nil, fmt.Errorf("decode policy: %w", err)
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// validate checks the policy and compiles its selectors.
func (p *Policy) validate() error {
	if p.APIVersion != APIVersion || p.Kind != Kind {
		return fmt.Errorf("policy has apiVersion %q, kind %q: expected apiVersion %s, kind %s", p.APIVersion, p.Kind, APIVersion, Kind)
	}
	if len(p.Rules) == 0 {
		return errors.New("policy has no rules: expected at least one (a policy with none would deny every pod)")
	}
	seen := map[string]bool{}
	p.selectors = make([]labels.Selector, len(p.Rules))
	for i := range p.Rules {
		r := &p.Rules[i]
		if !ruleName.MatchString(r.Name) {
			return fmt.Errorf("rule %d: name %q: expected lower-case letters, digits, '.', '_' or '-', at most 63 characters", i+1, r.Name)
		}
		if seen[r.Name] {
			return fmt.Errorf("rule %s is defined twice: names must be unique", r.Name)
		}
		seen[r.Name] = true
		if err := r.validate(); err != nil {
			return fmt.Errorf("rule %s: %w", r.Name, err)
		}
		if r.Match.NamespaceSelector != nil {
			sel, err := metav1.LabelSelectorAsSelector(r.Match.NamespaceSelector)
			if err != nil {
				return fmt.Errorf("rule %s: match.namespaceSelector: %w", r.Name, err)
			}
			p.selectors[i] = sel
		}
	}
	return nil
}

// globList is one list of globs of a rule, for validation.
type globList struct {
	field    string
	globs    []string
	required bool
}

func (r *Rule) validate() error {
	if len(r.Match.Namespaces) == 0 && r.Match.NamespaceSelector == nil {
		return errors.New("match has neither namespaces nor namespaceSelector: expected at least one (use namespaces: [\"*\"] for every namespace)")
	}
	a := &r.Allow
	lists := []globList{
		{"match.namespaces", r.Match.Namespaces, false},
		{"match.serviceAccounts", r.Match.ServiceAccounts, false},
		{"allow.roles", a.Roles, true},
		{"allow.authPaths", a.AuthPaths, true},
		{"allow.addresses", a.Addresses, true},
		{"allow.authTypes", a.AuthTypes, false},
		{"allow.paths.read", a.Paths.Read, false},
		{"allow.paths.write", a.Paths.Write, false},
		{"allow.paths.pkiIssue", a.Paths.PKIIssue, false},
	}
	for _, l := range lists {
		if l.required && len(l.globs) == 0 {
			return fmt.Errorf("%s is empty: expected the names or globs it allows (\"*\" for any)", l.field)
		}
		for _, g := range l.globs {
			if err := glob.Validate(g); err != nil {
				return fmt.Errorf("%s: %q: %w", l.field, g, err)
			}
		}
	}
	// A Vault namespace may be the root one (""), so only the glob syntax is checked.
	for _, g := range a.VaultNamespaces {
		if g != "" {
			if err := glob.Validate(g); err != nil {
				return fmt.Errorf("allow.vaultNamespaces: %q: %w", g, err)
			}
		}
	}
	if len(a.Paths.Read)+len(a.Paths.Write)+len(a.Paths.PKIIssue) == 0 {
		return errors.New("allow.paths has no read, write or pkiIssue globs: the rule would allow no secret")
	}
	return nil
}

// authTypes is the rule's allowed auth types with the default applied.
func (a *Allow) authTypes() []string {
	if len(a.AuthTypes) == 0 {
		return []string{"kubernetes"}
	}
	return a.AuthTypes
}

// vaultNamespaces is the rule's allowed Vault namespaces with the default applied.
func (a *Allow) vaultNamespaces() []string {
	if len(a.VaultNamespaces) == 0 {
		return []string{""}
	}
	return a.VaultNamespaces
}

// pathRule is what the rule lets identity do with paths, for the agent config.
func (a *Allow) pathRule(rule, identity string) agentconfig.PathRule {
	return agentconfig.PathRule{Rule: rule, Identity: identity, Read: a.Paths.Read, Write: a.Paths.Write, PKIIssue: a.Paths.PKIIssue}
}
