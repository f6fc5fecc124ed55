package policy

import (
	"fmt"
	"strings"
)

// DenialError explains a denied pod: for each identity that no rule allowed, the pod's
// namespace and service account, and either that no rule matches them or, for each rule that
// matched, why it did not allow the request.
type DenialError struct{ d *Decision }

func (e *DenialError) Error() string {
	var parts []string
	req := e.d.Request
	for _, idd := range e.d.Identities {
		if idd.Allowed() {
			continue
		}
		head := fmt.Sprintf("namespace %s, service account %s", req.Namespace, req.ServiceAccount)
		if len(e.d.Identities) > 1 {
			head += ", identity " + idd.Identity
		}
		if len(idd.Matched) == 0 {
			parts = append(parts, head+": no policy rule matches this namespace and service account")
			continue
		}
		var why []string
		for _, r := range idd.Refusals {
			why = append(why, strings.Join(r.Reasons, ", "))
		}
		parts = append(parts, head+": "+strings.Join(why, "; "))
	}
	return "policy: " + strings.Join(parts, "; ")
}

// Explain describes a decision in lines, for `vault-injector policy check`.
func (d *Decision) Explain() []string {
	var out []string
	for _, idd := range d.Identities {
		line := fmt.Sprintf("identity %s: ", idd.Identity)
		switch {
		case idd.Allowed():
			line += "allowed by rule " + strings.Join(idd.AllowedBy, ", ")
		case len(idd.Matched) == 0:
			line += "denied: no rule matches"
		default:
			line += "denied by every matching rule (" + strings.Join(idd.Matched, ", ") + ")"
		}
		out = append(out, line)
		for _, r := range idd.Refusals {
			out = append(out, fmt.Sprintf("  rule %s refuses: %s", r.Rule, strings.Join(r.Reasons, ", ")))
		}
	}
	return out
}

// list shows a rule's allowed values.
func list(globs []string) string {
	if len(globs) == 0 {
		return "none"
	}
	q := make([]string, len(globs))
	for i, g := range globs {
		q[i] = quoteEmpty(g)
	}
	return strings.Join(q, ", ")
}

// quoteEmpty shows the empty string (the root Vault namespace) visibly.
func quoteEmpty(s string) string {
	if s == "" {
		return `""`
	}
	return s
}
