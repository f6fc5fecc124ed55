package patch

import (
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/vault-injector/vault-injector/agentconfig"
)

// envCopy is the app environment our containers receive, renamed under
// agentconfig.AppEnvPrefix, so templates can use {{ env "X" }} with the values the app sees
// while nothing of it can configure the agent. Secret references are not copied: the agent must
// not gain access to Kubernetes Secrets the user meant for the app only.
type envCopy struct {
	env     []corev1.EnvVar
	envFrom []corev1.EnvFromSource
}

func appEnv(cs []Container, apps []int) envCopy {
	var out envCopy
	seen := map[string]bool{}
	for _, i := range apps {
		c := cs[i]
		for _, f := range c.EnvFrom {
			if f.ConfigMapRef == nil {
				continue
			}
			f.Prefix = agentconfig.AppEnvPrefix + f.Prefix
			if !slices.ContainsFunc(out.envFrom, func(e corev1.EnvFromSource) bool {
				return e.ConfigMapRef != nil && e.ConfigMapRef.Name == f.ConfigMapRef.Name && e.Prefix == f.Prefix
			}) {
				out.envFrom = append(out.envFrom, f)
			}
		}
		for _, e := range c.Env {
			if seen[e.Name] {
				continue
			}
			if vf := e.ValueFrom; vf != nil && (vf.SecretKeyRef != nil || vf.ResourceFieldRef != nil) {
				// resourceFieldRef without containerName would resolve against our container.
				continue
			}
			e.Value = prefixReferences(e.Value, seen)
			seen[e.Name] = true
			e.Name = agentconfig.AppEnvPrefix + e.Name
			out.env = append(out.env, e)
		}
	}
	return out
}

// prefixReferences renames the $(VAR) references the kubelet expands in an env value when VAR
// is an earlier entry of the copy, so a value built from other variables still resolves against
// the renamed copies. Other references stay as written: the kubelet resolves them against what
// our container has unrenamed (service links) or leaves them literal. `$$` is the kubelet's
// escape for a literal `$` and stays as written, as does a `$(` without its `)`.
func prefixReferences(v string, defined map[string]bool) string {
	if !strings.Contains(v, "$(") {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		switch {
		case v[i] != '$' || i+1 == len(v):
			b.WriteByte(v[i])
		case v[i+1] == '$':
			b.WriteString("$$")
			i++
		case v[i+1] == '(':
			end := strings.IndexByte(v[i+2:], ')')
			if end < 0 {
				b.WriteString(v[i:])
				return b.String()
			}
			name := v[i+2 : i+2+end]
			if defined[name] {
				name = agentconfig.AppEnvPrefix + name
			}
			b.WriteString("$(" + name + ")")
			i += 2 + end
		default:
			b.WriteByte(v[i])
		}
	}
	return b.String()
}
