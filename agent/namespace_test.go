package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/vault-injector/vault-injector/agentconfig"
)

// TestVaultNamespaceOnEveryRequest: with a Vault (Enterprise/OpenBao) namespace configured, the
// login and every read carry it. Open-source Vault has no namespaces, so a recording stand-in
// answers here.
func TestVaultNamespaceOnEveryRequest(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]string{} // path -> namespace header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path] = r.Header.Get("X-Vault-Namespace")
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/auth/kubernetes/login":
			_ = json.NewEncoder(w).Encode(map[string]any{"auth": map[string]any{"client_token": "t", "lease_duration": 3600, "renewable": true}})
		case "/v1/kv/a":
			_ = json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{"v": "x"}})
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"errors":[]}`))
		}
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	tokenFile := dir + "/token"
	if err := writeTestFile(tokenFile, "a.b.c"); err != nil {
		t.Fatal(err)
	}
	cfg := &agentconfig.Config{
		Version: agentconfig.Version, Mode: agentconfig.ModeInit,
		Identities: []agentconfig.Identity{{Name: agentconfig.DefaultIdentity, Method: "kubernetes", AuthPath: "auth/kubernetes",
			Role: "app", Address: srv.URL, Namespace: "team-a/apps"}},
		Secrets:    []agentconfig.Secret{{Name: "a", Identity: agentconfig.DefaultIdentity, Path: "kv/a", File: "a", Perms: 0o600}},
		SecretsDir: t.TempDir(), HomeDir: t.TempDir(), ServiceAccountTokenFile: tokenFile,
		RefreshInterval: agentconfig.Duration(time.Minute),
	}
	a, _ := newTestAgent(t, cfg)
	if err := a.Once(context.Background(), 2*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/v1/auth/kubernetes/login", "/v1/kv/a"} {
		if got := seen[p]; got != "team-a/apps" {
			t.Errorf("%s sent namespace %q, want team-a/apps", p, got)
		}
	}
}
