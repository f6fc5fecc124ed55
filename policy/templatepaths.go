package policy

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/vault-injector/vault-injector/agentconfig"
)

// PathUse is one Vault path a pod's annotations name, with what is done with it.
type PathUse struct {
	// Output names what reads it, for messages: "secret <name>" or "env <NAME>".
	Output string
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
	return outputPaths("secret "+s.Name, s.Path, s.Template)
}

// envPaths is secretPaths for an env variable: its path, or its template's calls.
func envPaths(v *agentconfig.EnvVar) []PathUse {
	return outputPaths("env "+v.Name, v.Path, v.Template)
}

func outputPaths(output, path, template string) []PathUse {
	var uses []PathUse
	if path != "" && template == "" {
		uses = append(uses, PathUse{Output: output, Path: path, Op: agentconfig.OpRead})
	}
	for _, m := range secretCall.FindAllStringSubmatchIndex(template, -1) {
		p, err := strconv.Unquote(template[m[2]:m[3]])
		if err != nil {
			continue
		}
		rest := strings.TrimLeft(template[m[3]:], " \t\r\n")
		// Anything but the end of the call means arguments: a write (or a PKI issue).
		write := rest != "" && !strings.HasPrefix(rest, "}}") && !strings.HasPrefix(rest, "-}}") &&
			!strings.HasPrefix(rest, ")") && !strings.HasPrefix(rest, "|")
		uses = append(uses, PathUse{Output: output, Path: p, Op: agentconfig.OperationOf(p, write)})
	}
	return uses
}
