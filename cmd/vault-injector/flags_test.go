package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestDefaultFlagsValidatedLikeAnnotations: a flag that feeds a per-pod default is checked
// when the command starts, by the validator of the annotation it stands in for. A bad value
// stops `webhook` with the flag named (not each admission, blaming the pod), and the same value
// as the pod annotation is denied with the annotation named.
func TestDefaultFlagsValidatedLikeAnnotations(t *testing.T) {
	// Without the flag check, `webhook` would go on to its certificate and fail there instead.
	t.Setenv("POD_NAMESPACE", "")
	old := serviceAccountNamespaceFile
	serviceAccountNamespaceFile = filepath.Join(t.TempDir(), "namespace")
	t.Cleanup(func() { serviceAccountNamespaceFile = old })

	for _, tc := range []struct {
		name, flag, annotation, value string
	}{
		{"refresh below 1s", "refresh-interval", "refresh-interval", "100ms"},
		{"relative secrets path", "secrets-path", "secrets-path", "vault/secrets"},
		{"root secrets path", "secrets-path", "secrets-path", "/"},
		{"unclean secrets path", "secrets-path", "secrets-path", "/vault/../secrets"},
		{"auth path traversal", "auth-path", "auth-path", "kubernetes/../../sys"},
		{"address without host", "vault-address", "address", "https://"},
		{"address with credentials", "vault-address", "address", "https://user@vault:8200"},
		{"negative memory limit", "agent-memory-limit", "agent-memory-limit", "-1Mi"},
		{"zero cpu request", "agent-cpu-request", "agent-cpu-request", "0"},
		{"bad CA configmap", "vault-ca-configmap", "ca-configmap", "Trust_Bundle"},
		{"two token audiences", "token-audience", "token-audience", "vault,api"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runCmd(t, "", "webhook", "--"+tc.flag+"="+tc.value)
			if want := "--" + tc.flag + "=" + yamlQuote(tc.value) + ": expected"; code != 1 || !strings.Contains(errOut, want) || !strings.Contains(errOut, "expected") {
				t.Errorf("webhook --%s=%s: exit %d, stderr %q; want exit 1 and %q", tc.flag, tc.value, code, errOut, want)
			}

			annotated := strings.Replace(pod, "role: app", "role: app\n    vault-injector.io/"+tc.annotation+": "+yamlQuote(tc.value), 1)
			code, _, errOut = runCmd(t, annotated, "inject", "-f", "-")
			if want := "annotation vault-injector.io/" + tc.annotation + "=" + yamlQuote(tc.value) + " is invalid: expected"; code != 1 || !strings.Contains(errOut, want) {
				t.Errorf("annotation %s=%s: exit %d, stderr %q; want %q", tc.annotation, tc.value, code, errOut, want)
			}
		})
	}
}

// yamlQuote quotes v for YAML; for these values it is also Go's %q, with which both the flag
// and the annotation error show the value.
func yamlQuote(v string) string { return `"` + v + `"` }
