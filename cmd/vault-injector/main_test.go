package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCmd(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

const pod = `apiVersion: v1
kind: Pod
metadata:
  name: app
  annotations:
    vault-injector.io/role: app
    vault-injector.io/secret-db: secret/data/db
spec:
  containers:
  - name: app
    image: app
`

func TestInjectCommand(t *testing.T) {
	code, out, errOut := runCmd(t, pod, "inject", "-f", "-", "--sidecar-style=classic", "--agent-image=example/agent:1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"name: vault-injector-init", "name: vault-injector-agent", "image: example/agent:1"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func TestInjectCommandDenies(t *testing.T) {
	bad := strings.Replace(pod, "role: app", "role: app\n    vault-injector.io/mode: forever", 1)
	f := filepath.Join(t.TempDir(), "pod.yaml")
	if err := os.WriteFile(f, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCmd(t, "", "inject", "-f", f)
	if code != 1 || out != "" || !strings.Contains(errOut, `vault-injector.io/mode="forever" is invalid: expected "sidecar" or "init"`) {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestFlagsFromEnvironment(t *testing.T) {
	t.Setenv("VAULT_INJECTOR_AGENT_IMAGE", "from-env/agent:2")
	t.Setenv("VAULT_INJECTOR_SIDECAR_STYLE", "sideways")
	code, _, errOut := runCmd(t, pod, "inject")
	if code != 1 || !strings.Contains(errOut, `--sidecar-style="sideways"`) {
		t.Fatalf("bad env value not reported: exit %d %q", code, errOut)
	}
	t.Setenv("VAULT_INJECTOR_SIDECAR_STYLE", "native")
	code, out, errOut := runCmd(t, pod, "inject")
	if code != 0 || !strings.Contains(out, "image: from-env/agent:2") {
		t.Fatalf("env override not applied: exit %d %s", code, errOut)
	}
	// A flag on the command line wins over the environment.
	_, out, _ = runCmd(t, pod, "inject", "--agent-image=flag/agent:3")
	if !strings.Contains(out, "image: flag/agent:3") {
		t.Errorf("flag did not win over env")
	}
}

func TestHelpListsEnvOverrides(t *testing.T) {
	code, _, errOut := runCmd(t, "", "webhook", "--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"--listen", "$VAULT_INJECTOR_VAULT_ADDRESS", "--tls-cert-file", "--sidecar-style", "--token-audience"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestWebhookNeedsTLS(t *testing.T) {
	code, _, errOut := runCmd(t, "", "webhook")
	if code != 1 || !strings.Contains(errOut, "--tls-cert-file and --tls-key-file are required") {
		t.Fatalf("exit %d %q", code, errOut)
	}
}

func TestUnknownCommand(t *testing.T) {
	if code, _, errOut := runCmd(t, "", "frobnicate"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Fatalf("exit %d %q", code, errOut)
	}
}
