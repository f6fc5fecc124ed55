package agentconfig

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Prefix starts every annotation this product reads or writes.
const Prefix = "vault-injector.io/"

// Annotation keys. Per-secret keys are Prefix + kind + "-" + name.
const (
	AnnotationInject             = Prefix + "inject"
	AnnotationRole               = Prefix + "role"
	AnnotationAuthPath           = Prefix + "auth-path"
	AnnotationAddress            = Prefix + "address"
	AnnotationNamespace          = Prefix + "namespace"
	AnnotationTLSServerName      = Prefix + "tls-server-name"
	AnnotationTLSSkipVerify      = Prefix + "tls-skip-verify"
	AnnotationCAConfigMap        = Prefix + "ca-configmap"
	AnnotationTemplatesConfigMap = Prefix + "templates-configmap"
	AnnotationSecretsPath        = Prefix + "secrets-path"
	AnnotationContainers         = Prefix + "containers"
	AnnotationMode               = Prefix + "mode"
	AnnotationRefreshInterval    = Prefix + "refresh-interval"
	AnnotationRevokeOnShutdown   = Prefix + "revoke-on-shutdown"
	AnnotationNotifySignal       = Prefix + "notify-signal"
	AnnotationNotifyProcess      = Prefix + "notify-process"
	AnnotationNotifyCommand      = Prefix + "notify-command"
	AnnotationCPURequest         = Prefix + "agent-cpu-request"
	AnnotationCPULimit           = Prefix + "agent-cpu-limit"
	AnnotationMemoryRequest      = Prefix + "agent-memory-request"
	AnnotationMemoryLimit        = Prefix + "agent-memory-limit"
	AnnotationEnvStyle           = Prefix + "env-style"
	AnnotationEnvOnChange        = Prefix + "env-on-change"
	// Several identities (identities.go).
	AnnotationAuthType                   = Prefix + "auth-type"
	AnnotationTokenAudience              = Prefix + "token-audience"
	AnnotationTemplatesConfigMapIdentity = Prefix + "templates-configmap-identity"

	// Written by the webhook, never by users.
	AnnotationStatus      = Prefix + "status"
	AnnotationAgentConfig = Prefix + "agent-config"
)

// Per-secret annotation kinds: Prefix + kind + "-" + name.
const (
	kindSecret = "secret-"
	kindTmpl   = "template-"
	kindFile   = "file-"
	kindPerms  = "perms-"
	// kindEnv names an environment variable, not a file: env-<NAME>.
	kindEnv = "env-"
)

// Defaults are the operator's settings that annotations may override. The webhook's flags are
// checked at start-up with the parser of the annotation each stands in for (values.go), so a
// default is never what makes a pod's admission fail.
type Defaults struct {
	Address         string
	AuthPath        string
	RefreshInterval time.Duration
	SecretsPath     string
	// CAConfigMap is "<configmap>[/<key>]" holding the CA of Vault's TLS certificate in every
	// namespace (trust-manager distributes such bundles); empty: the system roots.
	CAConfigMap string
}

// Request is everything a pod's annotations ask for: the agent's config plus the settings
// that shape the patch but that the agent never needs.
type Request struct {
	Agent *Config
	// SecretsPath is where app containers see the rendered files.
	SecretsPath string
	// Containers names the app containers that get the mount; empty means all of them.
	Containers []string
	// TemplatesConfigMap is the ConfigMap whose keys are templates, if any.
	TemplatesConfigMap string
	// CAConfigMap and CAKey name the ConfigMap key holding the CA that verifies Vault's TLS
	// certificate, if any.
	CAConfigMap, CAKey string
	// AgentJSON is Agent as Config.Marshal encodes it, when the caller has it already (the
	// webhook memoises requests); nil means encode Agent. A Request is never modified once
	// built, so one can serve many pods.
	AgentJSON []byte
	Resources Resources
	// EnvStyle is the pod's choice of how app containers get Agent.Env; empty: the operator's.
	EnvStyle EnvStyle
	// EnvOnChange is what happens to an app container whose variables changed.
	EnvOnChange EnvOnChange
}

// Resources are per-pod overrides of the injected containers' resources; empty means the
// operator's default.
type Resources struct {
	CPURequest, CPULimit, MemoryRequest, MemoryLimit string
}

// AnnotationError says which annotation is wrong, its value, and what was expected. The
// webhook returns its text as the denial message.
type AnnotationError struct {
	Key, Value, Expected string
}

func (e *AnnotationError) Error() string {
	return fmt.Sprintf("annotation %s=%q is invalid: expected %s", e.Key, e.Value, e.Expected)
}

func bad(key, value, expected string) error {
	return &AnnotationError{Key: key, Value: value, Expected: expected}
}

// OptedOut reports whether the pod asked not to be injected. An unparsable value is not an
// opt-out: FromAnnotations rejects it.
func OptedOut(annotations map[string]string) bool {
	v, ok := annotations[AnnotationInject]
	if !ok {
		return false
	}
	b, err := strconv.ParseBool(v)
	return err == nil && !b
}

// FromAnnotations parses and validates a pod's annotations. It returns (nil, nil) when the pod
// requests nothing (no secret-, template-, env- or templates-configmap annotation) or opted out, and
// an *AnnotationError for the first invalid annotation in key order, so the answer is stable.
// Each key is handled by its entry in annotationTable (or outputTable); what involves several
// keys is checked afterwards, by resolve.
func FromAnnotations(annotations map[string]string, d Defaults) (*Request, error) {
	keys := make([]string, 0, len(annotations))
	for k := range annotations {
		if strings.HasPrefix(k, Prefix) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	sort.Strings(keys)

	cfg := &Config{
		Version:                 Version,
		Mode:                    ModeSidecar,
		SecretsDir:              SecretsDir,
		HomeDir:                 HomeDir,
		ServiceAccountTokenFile: ServiceAccountTokenFile,
		RefreshInterval:         Duration(d.RefreshInterval),
	}
	p := &parser{
		req:     &Request{Agent: cfg, SecretsPath: d.SecretsPath},
		cfg:     cfg,
		id:      Identity{Name: DefaultIdentity, Method: "kubernetes", AuthPath: d.AuthPath, Address: d.Address},
		outputs: map[string]*output{},
		env:     map[string]*EnvVar{},
	}
	for _, key := range keys {
		val := annotations[key]
		if !utf8.ValidString(val) {
			return nil, bad(key, val, "UTF-8 text")
		}
		var err error
		if set, ok := annotationTable[key]; ok {
			err = set(p, val)
		} else {
			err = p.setOutput(key, strings.TrimPrefix(key, Prefix), val)
		}
		if err != nil {
			return nil, named(key, val, err)
		}
	}
	if p.optOut || (len(p.outputs) == 0 && len(p.env) == 0 && p.req.TemplatesConfigMap == "") {
		return nil, nil
	}
	if err := p.resolve(annotations, d); err != nil {
		return nil, err
	}
	return p.req, nil
}

// named turns a value's error into the denial that names the annotation.
func named(key, val string, err error) error {
	var iv *InvalidValue
	if errors.As(err, &iv) {
		return bad(key, val, iv.Expected)
	}
	return err
}
