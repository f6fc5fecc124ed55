package agentconfig

import (
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
)

// InvalidValue says what a setting's value must look like. The per-value parsers below return
// it; the annotation parser wraps it in an AnnotationError naming the pod's annotation, and the
// webhook's flags wrap it naming the flag, so an operator's default and a pod's override are held
// to one rule and a bad default fails at start-up instead of in every pod's denial.
type InvalidValue struct{ Expected string }

func (e *InvalidValue) Error() string { return "expected " + e.Expected }

func invalid(expected string) error { return &InvalidValue{Expected: expected} }

// MinRefreshInterval is the shortest refresh interval: more often would hammer Vault.
const MinRefreshInterval = time.Second

// ParseRole reads a Vault kubernetes-auth role name.
func ParseRole(v string) (string, error) {
	if strings.TrimSpace(v) == "" || strings.ContainsAny(v, "/ \t\n") {
		return "", invalid("the name of a Vault kubernetes-auth role (non-empty, no '/' or spaces)")
	}
	return v, nil
}

// ParseAuthPath reads an auth mount; "auth/" is added when missing.
func ParseAuthPath(v string) (string, error) {
	p, err := cleanVaultPath(v)
	if err != nil {
		return "", invalid("an auth mount path like auth/kubernetes (" + err.Error() + ")")
	}
	if !strings.HasPrefix(p, "auth/") {
		p = "auth/" + p
	}
	return p, nil
}

// ParseAddress reads a Vault URL; a trailing slash is dropped.
func ParseAddress(v string) (string, error) {
	if !validAddress(v) {
		return "", invalid("a Vault URL like https://vault.vault.svc:8200")
	}
	return strings.TrimRight(v, "/"), nil
}

// ParseVaultNamespace reads a Vault (Enterprise/OpenBao) namespace path.
func ParseVaultNamespace(v string) (string, error) {
	if _, err := cleanVaultPath(v); err != nil {
		return "", invalid("a Vault namespace path like team-a or team-a/child")
	}
	return strings.Trim(v, "/"), nil
}

// ParseSecretsPath reads the directory where app containers see the rendered files.
func ParseSecretsPath(v string) (string, error) {
	if !path.IsAbs(v) || path.Clean(v) != v || v == "/" {
		return "", invalid("an absolute, clean directory path like /vault/secrets")
	}
	return v, nil
}

// ParseRefreshInterval reads how often secrets without a lease are re-read.
func ParseRefreshInterval(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, invalid(refreshExpected)
	}
	return d, CheckRefreshInterval(d)
}

// CheckRefreshInterval checks an already parsed refresh interval (a duration flag).
func CheckRefreshInterval(d time.Duration) error {
	if d < MinRefreshInterval {
		return invalid(refreshExpected)
	}
	return nil
}

const refreshExpected = `a duration of at least 1s, like "5m"`

// ParseResource reads a positive resource quantity of the injected containers.
func ParseResource(v string) (resource.Quantity, error) {
	q, err := resource.ParseQuantity(v)
	if err != nil || q.Sign() <= 0 {
		return resource.Quantity{}, invalid("a positive Kubernetes quantity like 10m (cpu) or 16Mi (memory)")
	}
	return q, nil
}

// ParseCAConfigMap reads "<configmap>[/<key>]" naming the CA of Vault's certificate.
func ParseCAConfigMap(v string) (name, key string, err error) {
	name, key, err = ParseConfigMapKey(v)
	if err != nil {
		return "", "", invalid("a ConfigMap in the pod's namespace holding Vault's CA, as <name> (key ca.crt) or <name>/<key> (" + err.Error() + ")")
	}
	return name, key, nil
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

// Signals are the signals notify-signal accepts.
var Signals = map[string]syscall.Signal{
	"SIGHUP": syscall.SIGHUP, "SIGUSR1": syscall.SIGUSR1, "SIGUSR2": syscall.SIGUSR2,
	"SIGTERM": syscall.SIGTERM, "SIGINT": syscall.SIGINT, "SIGQUIT": syscall.SIGQUIT,
}

var (
	nameRE           = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	dns1123Label     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dns1123Subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	configMapKey     = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)
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
