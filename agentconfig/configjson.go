package agentconfig

import (
	"strconv"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// appendJSON appends the compact form of c (Marshal): the members of Config, Identity and
// Secret in their declaration order, a defaultable member only when it differs from its
// default, the rarer nested values (env, notify, path rules) by encoding/json/v2.
// configjson_test.go checks it against encoding/json/v2 on the struct with the defaults
// cleared, so a field added to the struct and not here fails the tests.
func (c *Config) appendJSON(b []byte) ([]byte, error) {
	w := jsonWriter{b: b}
	w.raw(`{"version":`)
	w.b = strconv.AppendInt(w.b, int64(Version), 10)
	if c.Mode != ModeSidecar {
		w.str(`,"mode":`, string(c.Mode), true)
	}
	w.list(`,"identities":`, len(c.Identities), func(i int) { w.identity(&c.Identities[i]) })
	if len(c.Secrets) > 0 {
		w.list(`,"secrets":`, len(c.Secrets), func(i int) { w.secret(&c.Secrets[i]) })
	}
	w.str(`,"templatesDir":`, c.TemplatesDir, true)
	w.str(`,"templatesIdentity":`, c.TemplatesIdentity, true)
	w.str(`,"secretsDir":`, omitDefault(c.SecretsDir, SecretsDir), true)
	w.str(`,"homeDir":`, omitDefault(c.HomeDir, HomeDir), true)
	w.str(`,"serviceAccountTokenFile":`, omitDefault(c.ServiceAccountTokenFile, ServiceAccountTokenFile), true)
	if c.RefreshInterval != DefaultRefreshInterval && c.RefreshInterval != 0 {
		w.str(`,"refreshInterval":`, time.Duration(c.RefreshInterval).String(), false)
	}
	if c.RevokeOnShutdown != nil {
		w.raw(`,"revokeOnShutdown":`)
		w.b = strconv.AppendBool(w.b, *c.RevokeOnShutdown)
	}
	if c.Env != nil {
		w.nested(`,"env":`, c.Env)
	}
	if c.Notify != nil {
		w.nested(`,"notify":`, c.Notify)
	}
	if len(c.PathRules) > 0 {
		w.nested(`,"pathRules":`, c.PathRules)
	}
	w.raw("}")
	return w.b, w.err
}

func (w *jsonWriter) identity(id *Identity) {
	w.str(`{"name":`, id.Name, false)
	if id.Method != MethodKubernetes {
		w.str(`,"method":`, id.Method, true)
	}
	w.str(`,"authPath":`, omitDefault(id.AuthPath, defaultAuthPathOf(id.Method)), true)
	w.str(`,"role":`, id.Role, false)
	w.str(`,"address":`, id.Address, false)
	w.str(`,"namespace":`, id.Namespace, true)
	w.str(`,"tlsServerName":`, id.TLSServerName, true)
	if id.TLSSkipVerify {
		w.raw(`,"tlsSkipVerify":true`)
	}
	w.str(`,"caCertFile":`, id.CACertFile, true)
	w.str(`,"audience":`, id.Audience, true)
	w.str(`,"tokenFile":`, id.TokenFile, true)
	w.raw("}")
}

func (w *jsonWriter) secret(s *Secret) {
	w.str(`{"name":`, s.Name, false)
	w.str(`,"identity":`, omitDefault(s.Identity, DefaultIdentity), true)
	w.str(`,"path":`, s.Path, true)
	w.str(`,"template":`, s.Template, true)
	w.str(`,"file":`, omitDefault(s.File, s.Name), true)
	if !s.Perms.IsZero() {
		w.raw(`,"perms":`)
		p, _ := s.Perms.MarshalJSON()
		w.b = append(w.b, p...)
	}
	w.raw("}")
}

// omitDefault is "" when v is its default, so the member is left out.
func omitDefault(v, def string) string {
	if v == def {
		return ""
	}
	return v
}

// jsonWriter appends JSON and keeps the first error (a string that is not valid UTF-8).
type jsonWriter struct {
	b   []byte
	err error
}

func (w *jsonWriter) raw(s string) { w.b = append(w.b, s...) }

// list appends member and an array of n elements, each written by each.
func (w *jsonWriter) list(member string, n int, each func(i int)) {
	w.raw(member)
	w.raw("[")
	for i := range n {
		if i > 0 {
			w.raw(",")
		}
		each(i)
	}
	w.raw("]")
}

// str appends member and s quoted; nothing when omitEmpty and s is empty.
func (w *jsonWriter) str(member, s string, omitEmpty bool) {
	if omitEmpty && s == "" {
		return
	}
	w.raw(member)
	var err error
	if w.b, err = jsontext.AppendQuote(w.b, s); err != nil && w.err == nil {
		w.err = err
	}
}

// nested appends member and v by encoding/json/v2.
func (w *jsonWriter) nested(member string, v any) {
	out, err := jsonv2.Marshal(v, jsonv2.Deterministic(true))
	if err != nil {
		if w.err == nil {
			w.err = err
		}
		return
	}
	w.raw(member)
	w.b = append(w.b, out...)
}
