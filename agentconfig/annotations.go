package agentconfig

import (
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/resource"
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
)

// Defaults are the operator's settings that annotations may override.
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
// requests nothing (no secret-, template- or templates-configmap annotation) or opted out, and
// an *AnnotationError for the first invalid annotation in key order, so the answer is stable.
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

	id := Identity{Name: DefaultIdentity, Method: "kubernetes", AuthPath: d.AuthPath, Address: d.Address}
	cfg := &Config{
		Version:                 Version,
		Mode:                    ModeSidecar,
		SecretsDir:              SecretsDir,
		HomeDir:                 HomeDir,
		ServiceAccountTokenFile: ServiceAccountTokenFile,
		RefreshInterval:         Duration(d.RefreshInterval),
	}
	req := &Request{Agent: cfg, SecretsPath: d.SecretsPath}
	secrets := map[string]*Secret{}
	secret := func(name string) *Secret {
		s, ok := secrets[name]
		if !ok {
			s = &Secret{Name: name, Identity: DefaultIdentity, File: name, Perms: 0o644}
			secrets[name] = s
		}
		return s
	}
	var notify Notify
	optOut := false

	for _, key := range keys {
		val := annotations[key]
		short := strings.TrimPrefix(key, Prefix)
		if !utf8.ValidString(val) {
			return nil, bad(key, val, "UTF-8 text")
		}
		switch key {
		case AnnotationInject:
			b, err := strconv.ParseBool(val)
			if err != nil {
				return nil, bad(key, val, `"true" or "false"`)
			}
			optOut = !b
		case AnnotationRole:
			if strings.TrimSpace(val) == "" || strings.ContainsAny(val, "/ \t\n") {
				return nil, bad(key, val, "the name of a Vault kubernetes-auth role (non-empty, no '/' or spaces)")
			}
			id.Role = val
		case AnnotationAuthPath:
			p, err := cleanVaultPath(val)
			if err != nil {
				return nil, bad(key, val, "an auth mount path like auth/kubernetes ("+err.Error()+")")
			}
			if !strings.HasPrefix(p, "auth/") {
				p = "auth/" + p
			}
			id.AuthPath = p
		case AnnotationAddress:
			if !validAddress(val) {
				return nil, bad(key, val, "a Vault URL like https://vault.vault.svc:8200")
			}
			id.Address = strings.TrimRight(val, "/")
		case AnnotationNamespace:
			if _, err := cleanVaultPath(val); err != nil {
				return nil, bad(key, val, "a Vault namespace path like team-a or team-a/child")
			}
			id.Namespace = strings.Trim(val, "/")
		case AnnotationTLSServerName:
			if val == "" || strings.ContainsAny(val, "/: \t") {
				return nil, bad(key, val, "a DNS name")
			}
			id.TLSServerName = val
		case AnnotationTLSSkipVerify:
			b, err := strconv.ParseBool(val)
			if err != nil {
				return nil, bad(key, val, `"true" or "false"`)
			}
			id.TLSSkipVerify = b
		case AnnotationCAConfigMap:
			cm, cmKey, err := ParseConfigMapKey(val)
			if err != nil {
				return nil, bad(key, val, "a ConfigMap in the pod's namespace holding Vault's CA, as <name> (key ca.crt) or <name>/<key> ("+err.Error()+")")
			}
			req.CAConfigMap, req.CAKey = cm, cmKey
		case AnnotationTemplatesConfigMap:
			if !dns1123Subdomain.MatchString(val) || len(val) > 253 {
				return nil, bad(key, val, "a ConfigMap name (lower-case DNS subdomain) in the pod's namespace")
			}
			req.TemplatesConfigMap = val
			cfg.TemplatesDir = TemplatesDir
			cfg.TemplatesIdentity = DefaultIdentity
		case AnnotationSecretsPath:
			if !path.IsAbs(val) || path.Clean(val) != val || val == "/" {
				return nil, bad(key, val, "an absolute, clean directory path like /vault/secrets")
			}
			req.SecretsPath = val
		case AnnotationContainers:
			names := strings.Split(val, ",")
			for i, n := range names {
				n = strings.TrimSpace(n)
				if !dns1123Label.MatchString(n) {
					return nil, bad(key, val, "a comma-separated list of container names")
				}
				names[i] = n
			}
			req.Containers = names
		case AnnotationMode:
			switch Mode(val) {
			case ModeSidecar, ModeInit:
				cfg.Mode = Mode(val)
			default:
				return nil, bad(key, val, `"sidecar" or "init"`)
			}
		case AnnotationRefreshInterval:
			v, err := time.ParseDuration(val)
			if err != nil || v < time.Second {
				return nil, bad(key, val, `a duration of at least 1s, like "5m"`)
			}
			cfg.RefreshInterval = Duration(v)
		case AnnotationRevokeOnShutdown:
			b, err := strconv.ParseBool(val)
			if err != nil {
				return nil, bad(key, val, `"true" or "false"`)
			}
			cfg.RevokeOnShutdown = &b
		case AnnotationNotifySignal:
			if _, ok := Signals[strings.ToUpper(val)]; !ok {
				return nil, bad(key, val, "a signal name like SIGHUP, SIGUSR1, SIGUSR2, SIGTERM, SIGINT or SIGQUIT")
			}
			notify.Signal = strings.ToUpper(val)
		case AnnotationNotifyProcess:
			if val == "" || strings.ContainsAny(val, "/\n") || len(val) > 64 {
				return nil, bad(key, val, "a process name as in /proc/<pid>/comm, like nginx")
			}
			notify.Process = val
		case AnnotationNotifyCommand:
			var argv []string
			if err := json.Unmarshal([]byte(val), &argv); err != nil || len(argv) == 0 || argv[0] == "" {
				return nil, bad(key, val, `a JSON array of strings, like ["/bin/reload","--now"]`)
			}
			notify.Command = argv
		case AnnotationCPURequest, AnnotationCPULimit, AnnotationMemoryRequest, AnnotationMemoryLimit:
			q, err := resource.ParseQuantity(val)
			if err != nil || q.Sign() <= 0 {
				return nil, bad(key, val, "a positive Kubernetes quantity like 10m (cpu) or 16Mi (memory)")
			}
			switch key {
			case AnnotationCPURequest:
				req.Resources.CPURequest = val
			case AnnotationCPULimit:
				req.Resources.CPULimit = val
			case AnnotationMemoryRequest:
				req.Resources.MemoryRequest = val
			default:
				req.Resources.MemoryLimit = val
			}
		case AnnotationStatus:
			// Written by us; the webhook checks it before parsing.
		case AnnotationAgentConfig:
			return nil, bad(key, "(omitted)", "no value: this annotation is written by the webhook, not by users")
		default:
			if err := perSecret(key, short, val, secret); err != nil {
				return nil, err
			}
		}
	}

	if optOut || (len(secrets) == 0 && req.TemplatesConfigMap == "") {
		return nil, nil
	}
	if id.Role == "" {
		return nil, bad(AnnotationRole, "", "the Vault role to log in with; it is required when secrets or templates are requested")
	}
	if req.CAConfigMap == "" && d.CAConfigMap != "" {
		name, key, err := ParseConfigMapKey(d.CAConfigMap)
		if err != nil {
			return nil, fmt.Errorf("default Vault CA ConfigMap %q: %w", d.CAConfigMap, err)
		}
		req.CAConfigMap, req.CAKey = name, key
	}
	if req.CAConfigMap != "" {
		id.CACertFile = CAFile
	}
	if id.Address == "" {
		return nil, bad(AnnotationAddress, "", "a Vault address, since the webhook has no default (--vault-address)")
	}
	if notify.Signal != "" && notify.Process == "" {
		return nil, bad(AnnotationNotifyProcess, "", "the name of the process to signal, since "+AnnotationNotifySignal+" is set")
	}
	if notify.Process != "" && notify.Signal == "" {
		notify.Signal = "SIGHUP"
	}
	if notify.Signal != "" || len(notify.Command) > 0 {
		cfg.Notify = &notify
	}
	if (notify.Signal != "" || len(notify.Command) > 0) && cfg.Mode == ModeInit {
		return nil, bad(AnnotationMode, string(ModeInit), `"sidecar", since notify annotations only act when files change after start`)
	}
	cfg.Identities = []Identity{id}

	names := make([]string, 0, len(secrets))
	for n := range secrets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s := secrets[n]
		if s.Path == "" && s.Template == "" {
			return nil, bad(Prefix+kindSecret+n, "", "a Vault path or a "+Prefix+kindTmpl+n+" template, since file/perms annotations name "+n)
		}
		cfg.Secrets = append(cfg.Secrets, *s)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("annotations: %w", err)
	}
	return req, nil
}

// perSecret handles secret-, template-, file- and perms-<name>.
func perSecret(key, short, val string, secret func(string) *Secret) error {
	var kind string
	for _, k := range []string{kindSecret, kindTmpl, kindFile, kindPerms} {
		if strings.HasPrefix(short, k) {
			kind = k
			break
		}
	}
	if kind == "" {
		return bad(key, val, "a known annotation; "+Prefix+"* is reserved and this key is not one of ours (see the README's annotation table)")
	}
	name := strings.TrimPrefix(short, kind)
	if err := validateName(name); err != nil {
		return bad(key, val, "a key of the form "+Prefix+kind+"<name> where <name> "+err.Error())
	}
	s := secret(name)
	switch kind {
	case kindSecret:
		p, err := cleanVaultPath(val)
		if err != nil {
			return bad(key, val, "a Vault path like secret/data/app ("+err.Error()+")")
		}
		s.Path = p
	case kindTmpl:
		if strings.TrimSpace(val) == "" {
			return bad(key, val, "a non-empty consul-template template")
		}
		s.Template = val
	case kindFile:
		if err := validateRelPath(val); err != nil {
			return bad(key, val, "a relative file path inside the secrets directory ("+err.Error()+")")
		}
		s.File = path.Clean(val)
	case kindPerms:
		m, err := parsePerms(val)
		if err != nil {
			return bad(key, val, "an octal file mode like 0400 or 0644")
		}
		s.Perms = m
	}
	return nil
}

var (
	nameRE           = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	dns1123Label     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dns1123Subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

// validateName checks a secret name: it becomes the default file name.
func validateName(n string) error {
	switch {
	case n == "":
		return fmt.Errorf("is empty")
	case len(n) > 63:
		return fmt.Errorf("is longer than 63 characters")
	case !nameRE.MatchString(n):
		return fmt.Errorf("must be a file name: letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	return nil
}

// validateRelPath accepts clean relative paths that stay inside the directory.
func validateRelPath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("it is empty")
	case path.IsAbs(p):
		return fmt.Errorf("it is absolute")
	case len(p) > 255:
		return fmt.Errorf("it is longer than 255 characters")
	case strings.ContainsAny(p, "\x00\\\n"):
		return fmt.Errorf("it contains a NUL, backslash or newline")
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." || part == "." || part == "" {
			return fmt.Errorf("it contains an empty, '.' or '..' element")
		}
		if strings.HasPrefix(part, "..") {
			// Kubernetes' atomic writer uses ..data and ..<timestamp> inside volumes.
			return fmt.Errorf("an element starts with '..'")
		}
	}
	return nil
}

// cleanVaultPath trims slashes and rejects paths that could escape their mount.
func cleanVaultPath(p string) (string, error) {
	t := strings.Trim(p, "/")
	if t == "" {
		return "", fmt.Errorf("it is empty")
	}
	if strings.ContainsAny(t, " \t\n\x00?#") {
		return "", fmt.Errorf("it contains whitespace, '?' or '#'")
	}
	for _, part := range strings.Split(t, "/") {
		if part == ".." || part == "." || part == "" {
			return "", fmt.Errorf("it contains an empty, '.' or '..' element")
		}
	}
	return t, nil
}

func validAddress(a string) bool {
	for _, scheme := range []string{"https://", "http://"} {
		if rest, ok := strings.CutPrefix(a, scheme); ok {
			host := strings.SplitN(rest, "/", 2)[0]
			return host != "" && !strings.ContainsAny(rest, " \t\n?#@")
		}
	}
	return false
}

func parsePerms(s string) (FileMode, error) {
	if len(s) < 3 || len(s) > 4 {
		return 0, fmt.Errorf("file mode %q: expected 3 or 4 octal digits like 0640", s)
	}
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o777 {
		return 0, fmt.Errorf("file mode %q: expected an octal mode between 0000 and 0777", s)
	}
	return FileMode(v), nil
}

// Signals are the signals notify-signal accepts.
var Signals = map[string]syscall.Signal{
	"SIGHUP": syscall.SIGHUP, "SIGUSR1": syscall.SIGUSR1, "SIGUSR2": syscall.SIGUSR2,
	"SIGTERM": syscall.SIGTERM, "SIGINT": syscall.SIGINT, "SIGQUIT": syscall.SIGQUIT,
}

// ParseConfigMapKey reads "<configmap>[/<key>]"; the key defaults to ca.crt.
func ParseConfigMapKey(v string) (name, key string, err error) {
	name, key, found := strings.Cut(v, "/")
	if !found {
		key = "ca.crt"
	}
	if !dns1123Subdomain.MatchString(name) || len(name) > 253 {
		return "", "", fmt.Errorf("%q is not a ConfigMap name", name)
	}
	if !configMapKey.MatchString(key) || len(key) > 253 || key == "." || key == ".." {
		return "", "", fmt.Errorf("%q is not a ConfigMap key", key)
	}
	return name, key, nil
}

var configMapKey = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)
