package agentconfig

import (
	"fmt"
	"strings"

	"github.com/vault-injector/vault-injector/internal/glob"
)

// Operation is what a template does with a Vault path: the admission policy allows path globs
// per operation.
type Operation string

const (
	// OpRead is `secret "path"`.
	OpRead Operation = "read"
	// OpWrite is `secret "path" "k=v"...` on anything but a PKI issue endpoint.
	OpWrite Operation = "write"
	// OpPKIIssue is `secret "<mount>/issue/<role>" "common_name=..."` (or sign/).
	OpPKIIssue Operation = "pki-issue"
)

// OperationOf classifies a `secret` call by its path and whether it carries arguments.
func OperationOf(path string, write bool) Operation {
	if !write {
		return OpRead
	}
	segs := strings.Split(strings.Trim(path, "/"), "/")
	if len(segs) >= 3 && (segs[len(segs)-2] == "issue" || segs[len(segs)-2] == "sign") {
		return OpPKIIssue
	}
	return OpWrite
}

// PathRule is what one admission-policy rule lets one identity do with Vault paths. The webhook
// writes the rules that allowed the pod into Config.PathRules, because paths in a templates
// ConfigMap and paths built at render time are only known inside the pod: the agent refuses
// every path no rule of its identity allows.
type PathRule struct {
	// Rule is the policy rule's name, for messages.
	Rule     string   `json:"rule"`
	Identity string   `json:"identity"`
	Read     []string `json:"read,omitempty"`
	Write    []string `json:"write,omitempty"`
	PKIIssue []string `json:"pkiIssue,omitempty"`
}

// Globs returns the rule's globs for op.
func (r *PathRule) Globs(op Operation) []string {
	switch op {
	case OpWrite:
		return r.Write
	case OpPKIIssue:
		return r.PKIIssue
	default:
		return r.Read
	}
}

// PathError is a path the admission policy does not allow; the agent does not retry it.
type PathError struct {
	Identity, Path string
	Op             Operation
	// Rules describes each rule of the identity and what it allows for Op.
	Rules []string
}

func (e *PathError) Error() string {
	return fmt.Sprintf("policy: %s of Vault path %q by identity %q is not allowed: %s", e.Op, e.Path, e.Identity, strings.Join(e.Rules, "; "))
}

// CheckPath returns nil when no policy applies (no PathRules) or a rule of identity allows op
// on path, else a *PathError naming the rules and what they allow.
func (c *Config) CheckPath(identity, path string, op Operation) error {
	if len(c.PathRules) == 0 {
		return nil
	}
	e := &PathError{Identity: identity, Path: path, Op: op}
	if err := CheckPathSegments(path); err != nil {
		e.Rules = []string{err.Error()}
		return e
	}
	for i := range c.PathRules {
		r := &c.PathRules[i]
		if r.Identity != identity {
			continue
		}
		globs := r.Globs(op)
		if glob.MatchAny(globs, path) {
			return nil
		}
		if len(globs) == 0 {
			e.Rules = append(e.Rules, fmt.Sprintf("rule %s allows no %s", r.Rule, op))
		} else {
			e.Rules = append(e.Rules, fmt.Sprintf("not in rule %s (allows %s)", r.Rule, strings.Join(globs, ", ")))
		}
	}
	if len(e.Rules) == 0 {
		e.Rules = []string{"no policy rule allowed this identity"}
	}
	return e
}

// MaxPolicyPathLen bounds the Vault paths a policy decides on.
const MaxPolicyPathLen = 1024

// CheckPathSegments refuses paths a glob could match while Vault reads another one:
// "secret/shop/../payments" matches secret/shop/** but names secret/payments.
func CheckPathSegments(path string) error {
	// Vault paths are short; a bound keeps glob matching cheap whatever a pod writes.
	if len(path) > MaxPolicyPathLen {
		return fmt.Errorf("the path is %d characters long: expected at most %d", len(path), MaxPolicyPathLen)
	}
	for _, seg := range strings.Split(strings.TrimSuffix(path, "/"), "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("the path has an empty, \".\" or \"..\" segment: expected a plain Vault path like secret/data/app")
		}
	}
	return nil
}

// validatePathRules checks what CheckPath relies on.
func (c *Config) validatePathRules(identities map[string]bool) error {
	for i, r := range c.PathRules {
		if r.Rule == "" {
			return fmt.Errorf("path rule %d has no rule name", i)
		}
		if !identities[r.Identity] {
			return fmt.Errorf("path rule %q names unknown identity %q", r.Rule, r.Identity)
		}
		for _, g := range [][]string{r.Read, r.Write, r.PKIIssue} {
			for _, p := range g {
				if err := glob.Validate(p); err != nil {
					return fmt.Errorf("path rule %q: %w", r.Rule, err)
				}
			}
		}
	}
	return nil
}
