// Package agentconfig owns the contract between the webhook and the agent: the typed, validated,
// versioned configuration that the webhook derives from a pod's annotations and the agent reads
// inside the pod. Both sides import this package, so there is exactly one parser and one set of
// rules. It does no I/O.
package agentconfig

import (
	"fmt"
	"path"
	"time"
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
	// ReadyName is the marker the agent writes into its home directory once every file has
	// been rendered; ReadyFile is where it is in the pod, which the native sidecar's
	// startupProbe checks.
	ReadyName = "ready"
	ReadyFile = HomeDir + "/" + ReadyName
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

// Identity returns the identity with the given name.
func (c *Config) Identity(name string) (Identity, bool) {
	for _, id := range c.Identities {
		if id.Name == name {
			return id, true
		}
	}
	return Identity{}, false
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
