//go:build e2e

package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vault-injector/vault-injector/agentconfig"
)

// syncBuffer is a bytes.Buffer safe for a process writing while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// The product binary (static, as in the image) as a sidecar: after its first render it
// releases its start-up pages, then keeps working — a change in Vault is rendered with code
// paged back in — and stops cleanly on SIGTERM. Login is a real TokenReview of a token the API
// server issued for the role's service account.
func TestAgentBinaryKeepsWorkingAfterReleasingStartupPages(t *testing.T) {
	ns := namespace(t, "s13-agent-binary", false, nil)
	role, path := vaultApp(t, ns, "app", "first")
	exp := int64(600)
	tr, err := env.c.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "app", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"vault"}, ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(tr.Status.Token), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := agentconfig.Config{
		Version: agentconfig.Version, Mode: agentconfig.ModeSidecar,
		Identities: []agentconfig.Identity{{Name: agentconfig.DefaultIdentity, Method: "kubernetes", AuthPath: "auth/kubernetes", Role: role, Address: env.vault.Addr}},
		Secrets: []agentconfig.Secret{{Name: "v", Identity: agentconfig.DefaultIdentity, File: "v", Perms: 0o600,
			Template: `{{ with secret "` + path + `" }}{{ .Data.var }}{{ end }}`}},
		SecretsDir: filepath.Join(dir, "secrets"), HomeDir: filepath.Join(dir, "home"),
		ServiceAccountTokenFile: tokenFile, RefreshInterval: agentconfig.Duration(time.Second),
	}
	for _, d := range []string{cfg.SecretsDir, cfg.HomeDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfgFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cmd := exec.Command(env.binary, "agent", "--config", cfgFile, "--log-level", "debug")
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("agent log:\n%s", logs)
		}
	})
	file := filepath.Join(cfg.SecretsDir, "v")
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	content := func() string { b, _ := os.ReadFile(file); return string(b) }
	waitFor("the first render", func() bool { return content() == "first" })
	waitFor("the start-up pages to be released", func() bool { return strings.Contains(logs.String(), "released start-up pages") })

	v, err := env.vault.Client()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Logical().Write(path, map[string]any{"var": "second"}); err != nil {
		t.Fatal(err)
	}
	waitFor("the change to be rendered after the release", func() bool { return content() == "second" })

	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("agent exited with %v after SIGTERM", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("agent did not stop within 10s of SIGTERM")
	}
}
