package policy

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/vault-injector/vault-injector/agentconfig"
)

// PathUse is one Vault path a pod's annotations name, with what is done with it.
type PathUse struct {
	Secret string // the secret-<name> it belongs to
	Path   string
	Op     agentconfig.Operation
}

// secretCall finds `secret "literal"` calls in a template. Paths built at render time (printf,
// variables) and the templates of a ConfigMap are not visible here: the agent checks those
// against the same globs (agentconfig.Config.CheckPath).
var secretCall = regexp.MustCompile(`\bsecret\s+("(?:[^"\\]|\\.)*")`)

// secretPaths lists the literal paths a secret reads or writes: its path annotation, and the
// `secret` calls of its inline template.
func secretPaths(s *agentconfig.Secret) []PathUse {
	var uses []PathUse
	if s.Path != "" && s.Template == "" {
		uses = append(uses, PathUse{Secret: s.Name, Path: s.Path, Op: agentconfig.OpRead})
	}
	for _, m := range secretCall.FindAllStringSubmatchIndex(s.Template, -1) {
		p, err := strconv.Unquote(s.Template[m[2]:m[3]])
		if err != nil {
			continue
		}
		rest := strings.TrimLeft(s.Template[m[3]:], " \t\r\n")
		// Anything but the end of the call means arguments: a write (or a PKI issue).
		write := rest != "" && !strings.HasPrefix(rest, "}}") && !strings.HasPrefix(rest, "-}}") &&
			!strings.HasPrefix(rest, ")") && !strings.HasPrefix(rest, "|")
		uses = append(uses, PathUse{Secret: s.Name, Path: p, Op: agentconfig.OperationOf(p, write)})
	}
	return uses
}
