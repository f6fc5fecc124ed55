// Package agentconfig owns the contract between the webhook and the agent: the typed, validated,
// versioned configuration that the webhook derives from a pod's annotations and the agent reads
// inside the pod. Both sides import this package, so there is exactly one parser and one set of
// rules. It does no I/O.
package agentconfig

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"time"
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

// Fixed paths inside the injected containers. The patch mounts volumes at these paths and
// writes them into the Config, so the agent never hard-codes them.
const (
	// SecretsDir is where the agent writes rendered files (a Memory emptyDir).
	SecretsDir = "/vault/secrets"
	// HomeDir holds the agent's own state: the Vault token and the ready marker (a Memory emptyDir
	// that only our containers mount).
	HomeDir = "/vault/home"
	// ConfigDir holds the config file, projected by the downward API from an annotation.
	ConfigDir = "/vault/config"
	// ConfigFile is the file in ConfigDir the agent reads.
	ConfigFile = ConfigDir + "/config.json"
	// TemplatesDir holds the keys of the templates ConfigMap, when one is named.
	TemplatesDir = "/vault/templates"
	// CADir holds the CA certificate Vault's TLS is verified with, when a ConfigMap names one.
	CADir = "/vault/ca"
	// CAFile is the CA certificate in CADir.
	CAFile = CADir + "/ca.crt"
	// ServiceAccountTokenDir holds the projected service-account tokens.
	ServiceAccountTokenDir = "/var/run/secrets/vault-injector"
	// ServiceAccountTokenFile is the projected token with the webhook's Vault audience.
	ServiceAccountTokenFile = ServiceAccountTokenDir + "/token"
	// ReadyFile appears once every file has been rendered; the native sidecar's startupProbe
	// checks it.
	ReadyFile = HomeDir + "/ready"
)

// Mode says how long the agent runs.
type Mode string

const (
	// ModeSidecar renders before the app starts and keeps renewing and re-rendering.
	ModeSidecar Mode = "sidecar"
	// ModeInit renders once before the app starts; nothing runs beside the app.
	ModeInit Mode = "init"
)

// Config is everything the agent needs. It is serialised as JSON into a pod annotation and
// projected into the agent's containers as ConfigFile.
//
// The fields marked omitzero are absent from the JSON when they hold their default (Marshal);
// Parse puts the default back, so in memory every field is always filled.
type Config struct {
	Version int  `json:"version"`
	Mode    Mode `json:"mode,omitzero"`

	// Identities are the Vault logins available to secrets. The single-role annotations produce
	// one identity named DefaultIdentity; the slice leaves room for several per pod.
	Identities []Identity `json:"identities"`

	// Secrets are the files to render, in a stable order.
	Secrets []Secret `json:"secrets,omitempty"`

	// TemplatesDir, when set, holds ConfigMap keys ending in .ctmpl or .tmpl; each renders to
	// the key without its suffix, with TemplatesIdentity.
	TemplatesDir      string `json:"templatesDir,omitempty"`
	TemplatesIdentity string `json:"templatesIdentity,omitempty"`

	SecretsDir              string `json:"secretsDir,omitzero"`
	HomeDir                 string `json:"homeDir,omitzero"`
	ServiceAccountTokenFile string `json:"serviceAccountTokenFile,omitzero"`

	// RefreshInterval is how often secrets without a lease (KV) are fetched again.
	RefreshInterval Duration `json:"refreshInterval,omitzero"`
	// RevokeOnShutdown revokes leases and the token when the sidecar stops. Nil means the
	// default: revoke when any rendered secret carries a lease.
	RevokeOnShutdown *bool `json:"revokeOnShutdown,omitempty"`

	// Env is the app containers' environment variables from Vault; nil when none are asked for.
	Env *Env `json:"env,omitempty"`

	// Notify tells the app that files changed; nil means nobody is told.
	Notify *Notify `json:"notify,omitempty"`

	// PathRules are the Vault paths the admission policy allows, per identity; empty means no
	// policy applies (pathrules.go).
	PathRules []PathRule `json:"pathRules,omitempty"`
}

// DefaultIdentity is the name of the identity built from the single-role annotations.
const DefaultIdentity = "default"

// Identity is one Vault login.
type Identity struct {
	Name string `json:"name"`
	// Method is the auth method: MethodKubernetes (the default) or MethodJWT.
	Method string `json:"method,omitzero"`
	// AuthPath is the mount, e.g. "auth/kubernetes" (the method's default).
	AuthPath string `json:"authPath,omitzero"`
	Role     string `json:"role"`
	Address  string `json:"address"`
	// Namespace is the Vault (Enterprise/OpenBao) namespace, not a Kubernetes one.
	Namespace     string `json:"namespace,omitempty"`
	TLSServerName string `json:"tlsServerName,omitempty"`
	TLSSkipVerify bool   `json:"tlsSkipVerify,omitzero"`
	CACertFile    string `json:"caCertFile,omitempty"`
	// Audience is the audience of the projected token this identity logs in with, when the pod
	// asked for one; empty: the webhook's --token-audience. TokenFile is that token's file;
	// empty: the config's ServiceAccountTokenFile.
	Audience  string `json:"audience,omitempty"`
	TokenFile string `json:"tokenFile,omitempty"`
}

// Auth methods an identity logs in with: Vault's kubernetes auth (Vault asks the API server's
// TokenReview) and Vault's jwt auth (Vault checks the token's signature with the cluster's key).
const (
	MethodKubernetes = "kubernetes"
	MethodJWT        = "jwt"
)

// SATokenFile is the projected service-account token the identity logs in with.
func (c *Config) SATokenFile(id Identity) string {
	if id.TokenFile != "" {
		return id.TokenFile
	}
	return c.ServiceAccountTokenFile
}

// Secret is one rendered file.
type Secret struct {
	// Name is the annotation suffix (secret-<name>), unique in the pod.
	Name string `json:"name"`
	// Identity logs in for this secret; DefaultIdentity when absent.
	Identity string `json:"identity,omitzero"`
	// Path is the Vault path for the default template (JSON of the data, KV v2 unwrapped).
	Path string `json:"path,omitempty"`
	// Template is an inline consul-template template; it wins over the default one.
	Template string `json:"template,omitempty"`
	// File is the output path relative to SecretsDir; Name when absent.
	File string `json:"file,omitzero"`
	// Perms is the file mode, e.g. 0o640; DefaultPerms when absent.
	Perms FileMode `json:"perms,omitzero"`
}

// Notify describes how the app learns about changed files.
type Notify struct {
	// Signal (e.g. "SIGHUP") is sent to every process named Process; needs
	// shareProcessNamespace on the pod.
	Signal  string `json:"signal,omitempty"`
	Process string `json:"process,omitempty"`
	// Command runs in the agent's container after a change.
	Command []string `json:"command,omitempty"`
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

// Identity returns the identity with the given name.
func (c *Config) Identity(name string) (Identity, bool) {
	for _, id := range c.Identities {
		if id.Name == name {
			return id, true
		}
	}
	return Identity{}, false
}

// Marshal returns the compact JSON the webhook writes into the pod: what equals its wire
// default is left out. The config is stored in every injected pod and travels in every
// admission answer, where it is a string inside JSON (each quote escaped) and then base64:
// for a typical pod the defaults were a third of it. It runs on every admission, so it is
// written by hand (configjson.go), byte for byte what encoding/json/v2 (go-json-experiment)
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
	for _, f := range []struct {
		field *string
		def   string
	}{{&c.SecretsDir, SecretsDir}, {&c.HomeDir, HomeDir}, {&c.ServiceAccountTokenFile, ServiceAccountTokenFile}} {
		if *f.field == "" {
			*f.field = f.def
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

// Validate checks the invariants the agent relies on.
func (c *Config) Validate() error {
	if c.Version < oldestVersion || c.Version > Version {
		return fmt.Errorf("agent config version %d is not supported (this agent reads versions %d to %d)", c.Version, oldestVersion, Version)
	}
	if c.Mode != ModeSidecar && c.Mode != ModeInit {
		return fmt.Errorf("agent config mode %q: expected %q or %q", c.Mode, ModeSidecar, ModeInit)
	}
	if len(c.Identities) == 0 {
		return fmt.Errorf("agent config has no identity")
	}
	seen := map[string]bool{}
	for i, id := range c.Identities {
		switch {
		case id.Name == "":
			return fmt.Errorf("identity %d has no name", i)
		case seen[id.Name]:
			return fmt.Errorf("identity %q is defined twice", id.Name)
		case id.Method != MethodKubernetes && id.Method != MethodJWT:
			return fmt.Errorf("identity %q: auth method %q is not supported (expected %q or %q)", id.Name, id.Method, MethodKubernetes, MethodJWT)
		case id.TokenFile != "" && (path.Dir(id.TokenFile) != ServiceAccountTokenDir || path.Base(id.TokenFile) == "token"):
			return fmt.Errorf("identity %q: token file %q is not one the webhook projects (a file in %s other than token)", id.Name, id.TokenFile, ServiceAccountTokenDir)
		case id.Role == "":
			return fmt.Errorf("identity %q has no role", id.Name)
		case id.Address == "":
			return fmt.Errorf("identity %q has no Vault address", id.Name)
		case id.AuthPath == "":
			return fmt.Errorf("identity %q has no auth path", id.Name)
		}
		seen[id.Name] = true
	}
	if len(c.Secrets) == 0 && c.TemplatesDir == "" && c.Env == nil {
		return fmt.Errorf("agent config renders nothing: no secrets, no templates directory and no env variables")
	}
	if c.Env != nil {
		if err := c.Env.validate(seen); err != nil {
			return err
		}
	}
	if c.TemplatesDir != "" && !seen[c.TemplatesIdentity] {
		return fmt.Errorf("templates use unknown identity %q", c.TemplatesIdentity)
	}
	files := map[string]string{}
	names := map[string]bool{}
	for _, s := range c.Secrets {
		if err := validateName(s.Name); err != nil {
			return fmt.Errorf("secret %q: %w", s.Name, err)
		}
		if names[s.Name] {
			return fmt.Errorf("secret %q is defined twice", s.Name)
		}
		names[s.Name] = true
		if !seen[s.Identity] {
			return fmt.Errorf("secret %q uses unknown identity %q", s.Name, s.Identity)
		}
		if s.Path == "" && s.Template == "" {
			return fmt.Errorf("secret %q has neither a Vault path nor a template", s.Name)
		}
		if err := validateRelPath(s.File); err != nil {
			return fmt.Errorf("secret %q file %q: %w", s.Name, s.File, err)
		}
		if other, dup := files[s.File]; dup {
			return fmt.Errorf("secrets %q and %q both write %q", other, s.Name, s.File)
		}
		files[s.File] = s.Name
	}
	if err := c.validatePathRules(seen); err != nil {
		return err
	}
	if c.SecretsDir == "" || c.HomeDir == "" || c.ServiceAccountTokenFile == "" {
		return fmt.Errorf("agent config lacks secretsDir, homeDir or serviceAccountTokenFile")
	}
	if c.RefreshInterval < Duration(time.Second) {
		return fmt.Errorf("refresh interval %s is below the minimum of 1s", time.Duration(c.RefreshInterval))
	}
	return nil
}
