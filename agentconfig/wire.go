package agentconfig

// The JSON form of a Config (the wire format between webhook and agent): its versions, what an
// absent member means, Marshal (hand-written: it runs on every admission), Parse and Load.

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// Version is the schema version written into every Config. The agent refuses a config whose
// version it does not know rather than guessing at fields.
//
// Version 2 leaves out what equals its default (see Marshal); an agent of version 1 would
// read the missing fields as empty, so it must refuse these configs, and does. Version 1
// configs (every field written) still parse.
const Version = 2

// oldestVersion is the oldest config version this agent still reads.
const oldestVersion = 1

// Wire defaults: what an absent field of a version 2 config means. They are part of the
// contract, independent of the webhook's flags (a flag's value is written when it differs).
const (
	// DefaultPerms is the mode of a rendered file when its perms are absent.
	DefaultPerms FileMode = 0o644
	// DefaultRefreshInterval is the refresh interval when it is absent.
	DefaultRefreshInterval = Duration(5 * time.Minute)
	// DefaultKubernetesAuthPath is a kubernetes identity's auth path when it is absent; a jwt
	// identity's is DefaultJWTAuthPath.
	DefaultKubernetesAuthPath = "auth/kubernetes"
	DefaultJWTAuthPath        = "auth/jwt"
)

// Marshal returns the compact JSON the webhook writes into the pod: what equals its wire
// default is left out. The config is stored in every injected pod and travels in every
// admission answer, where it is a string inside JSON (each quote escaped) and then base64:
// for a typical pod the defaults were a third of it. It runs on every admission, so it is
// written by hand (appendJSON below), byte for byte what encoding/json/v2 (go-json-experiment)
// writes for the struct: <, > and & in templates stay readable instead of \u003c.
func (c *Config) Marshal() ([]byte, error) { return c.appendJSON(make([]byte, 0, 1024)) }

// defaultAuthPathOf is the auth path an identity of this method has when none is written.
func defaultAuthPathOf(method string) string {
	if method == MethodJWT {
		return DefaultJWTAuthPath
	}
	return DefaultKubernetesAuthPath
}

// Parse reads a config written by Marshal (or by a webhook of an older version this agent
// still reads), puts back the defaults Marshal left out and validates it, so an agent never
// runs with a config the webhook would not have produced.
func Parse(data []byte) (*Config, error) {
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("decode agent config: %w", err)
	}
	c.fillDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// fillDefaults puts back what Marshal leaves out. Perms are put back while decoding
// (Secret.UnmarshalJSON), where an absent mode can be told from 0000.
func (c *Config) fillDefaults() {
	if c.Mode == "" {
		c.Mode = ModeSidecar
	}
	for _, d := range c.fixedDirs() {
		if *d.field == "" {
			*d.field = d.def
		}
	}
	if c.RefreshInterval == 0 {
		c.RefreshInterval = DefaultRefreshInterval
	}
	for i := range c.Identities {
		id := &c.Identities[i]
		if id.Method == "" {
			id.Method = MethodKubernetes
		}
		if id.AuthPath == "" {
			id.AuthPath = defaultAuthPathOf(id.Method)
		}
	}
	for i := range c.Secrets {
		s := &c.Secrets[i]
		if s.Identity == "" {
			s.Identity = DefaultIdentity
		}
		if s.File == "" {
			s.File = s.Name
		}
	}
}

// fixedDir is a path member of Config whose default is the path the patch mounts.
type fixedDir struct {
	member string // as appendJSON writes it, comma first
	field  *string
	def    string
}

// fixedDirs are the path members, in declaration order, for Marshal and Parse alike.
func (c *Config) fixedDirs() [3]fixedDir {
	return [3]fixedDir{
		{`,"secretsDir":`, &c.SecretsDir, SecretsDir},
		{`,"homeDir":`, &c.HomeDir, HomeDir},
		{`,"serviceAccountTokenFile":`, &c.ServiceAccountTokenFile, ServiceAccountTokenFile},
	}
}

// UnmarshalJSON decodes a secret whose perms, when absent, are DefaultPerms.
func (s *Secret) UnmarshalJSON(b []byte) error {
	type fields Secret // without this method
	f := fields{Perms: DefaultPerms}
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*s = Secret(f)
	return nil
}

// Load reads and parses the config file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read agent config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Duration is a time.Duration that reads and writes as a Go duration string ("5m").
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) {
	return strconv.AppendQuote(nil, time.Duration(d).String()), nil
}

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"5m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// FileMode is a permission mode written as an octal string ("0640").
type FileMode os.FileMode

// IsZero reports the default mode, DefaultPerms, as zero, so a secret's omitzero perms are
// absent when they are the default; 0000 is a mode like any other and is written.
func (m FileMode) IsZero() bool { return m == DefaultPerms }

func (m FileMode) MarshalJSON() ([]byte, error) {
	digits := strconv.FormatUint(uint64(m), 8)
	return []byte(`"` + strings.Repeat("0", max(0, 4-len(digits))) + digits + `"`), nil
}

func (m *FileMode) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("file mode must be an octal string like \"0640\": %w", err)
	}
	v, err := parsePerms(s)
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// appendJSON appends the compact form of c (Marshal): the members of Config, Identity and
// Secret in their declaration order, a defaultable member only when it differs from its
// default, the rarer nested values (env, notify, path rules) by encoding/json/v2.
// wire_test.go checks it against encoding/json/v2 on the struct with the defaults
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
	for _, d := range c.fixedDirs() {
		w.str(d.member, omitDefault(*d.field, d.def), true)
	}
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
