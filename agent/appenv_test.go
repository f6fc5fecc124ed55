package agent

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vault-injector/vault-injector/agentconfig"
	"github.com/vault-injector/vault-injector/test/trap"
)

// Nothing in the agent's environment redirects its requests or weakens its TLS: the Vault
// client is built from the identity alone. The variables the Vault library and Go's HTTP
// transport honour point at a trap listener; the agent still logs in to the real Vault, the
// trap sees nothing, and templates read the app's variables (renamed under AppEnvPrefix), not
// the agent's own.
func TestEnvironmentCannotRedirectTheAgent(t *testing.T) {
	e := startVault(t, readAll)
	e.write(t, "kv/app", map[string]any{"user": "alice"})
	tl := trap.Listen(t)
	addr := tl.Addr
	for _, k := range []string{"VAULT_ADDR", "VAULT_AGENT_ADDR", "VAULT_PROXY_ADDR", "VAULT_HTTP_PROXY"} {
		t.Setenv(k, "http://"+addr)
	}
	t.Setenv("HTTP_PROXY", "http://"+addr)
	t.Setenv("HTTPS_PROXY", "http://"+addr)
	t.Setenv("VAULT_SKIP_VERIFY", "true")
	t.Setenv("VAULT_NAMESPACE", "elsewhere")
	t.Setenv("VAULT_HEADERS", `{"X-Steal":"1"}`)
	t.Setenv("VAULT_TOKEN", "hvs.not-ours")
	t.Setenv("VAULT_TLS_SERVER_NAME", "evil.example")
	t.Setenv(agentconfig.AppEnvPrefix+"GREETING", "hello from the app")
	t.Setenv("AGENT_ONLY", "the agent's own")

	cfg := e.config(t, agentconfig.Secret{Name: "out", Template: `{{ with secret "kv/app" }}{{ .Data.user }}{{ end }} {{ env "GREETING" }}|{{ env "AGENT_ONLY" }}|{{ env "VAULT_ADDR" }}`})
	cfg.Mode = agentconfig.ModeInit
	a, _ := newTestAgent(t, cfg)
	if err := a.Once(context.Background(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if got, want := readFile(t, cfg.SecretsDir, "out"), "alice hello from the app||"; got != want {
		t.Errorf("rendered %q, want %q", got, want)
	}
	if n := tl.Connections(); n != 0 {
		t.Errorf("the trap listener named in the environment received %d connections", n)
	}
}

// The TLS settings come from the identity only: VAULT_SKIP_VERIFY and VAULT_CACERT in the
// environment do not make the agent trust a server it cannot verify, so the service-account
// token is never sent to it.
func TestEnvironmentCannotDisableTLSVerification(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		requests.Add(1)
		w.Write([]byte(`{"auth":{"client_token":"hvs.x","lease_duration":60}}`))
	}))
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VAULT_SKIP_VERIFY", "true")
	t.Setenv("VAULT_CACERT", ca)
	t.Setenv("SSL_CERT_FILE", ca)
	tokenFile := filepath.Join(t.TempDir(), "sa-token")
	if err := os.WriteFile(tokenFile, []byte("a.b.c"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := newVaultBackend(agentconfig.Identity{Name: "default", Method: agentconfig.MethodKubernetes, Address: srv.URL, AuthPath: "auth/kubernetes", Role: "r"}, tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Login(context.Background())
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("login to an unverifiable server: %v; want a certificate error", err)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("the server received %d requests", n)
	}
}
