package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/vault-injector/vault-injector/agentconfig"
)

// fakeVault is a Backend with Vault's semantics where the agent's lease and token handling
// depends on them: KV values that tests change, leased credentials under database/creds/
// (a new user and lease on every read), tokens that can be revoked, 403 for denied paths and
// dead tokens. Several agents (one process after another) may share it, as pods share Vault.
type fakeVault struct {
	mu       sync.Mutex
	kv       map[string]map[string]any
	denied   map[string]bool
	leaseTTL int
	tokenTTL int
	// live tokens and leases; counters of what was asked.
	tokens                                   map[string]bool
	leases                                   map[string]bool
	logins, leaseReads, leaseRenewals, reads int
	lookups                                  int
	serial                                   int
}

func newFakeVault() *fakeVault {
	return &fakeVault{kv: map[string]map[string]any{}, denied: map[string]bool{}, leaseTTL: 2, tokenTTL: 3600,
		tokens: map[string]bool{}, leases: map[string]bool{}}
}

func (f *fakeVault) set(path string, data map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.kv[path] = data
}

func (f *fakeVault) count(what *int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return *what
}

func (f *fakeVault) liveTokens() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.tokens)
}

func (f *fakeVault) revokeAllTokens() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.tokens)
	clear(f.leases) // Vault revokes a token's leases with it
}

// backend is one agent process's client: it holds its own current token.
func (f *fakeVault) backend() *fakeClient { return &fakeClient{v: f} }

type fakeClient struct {
	v     *fakeVault
	token string
}

func forbidden() error {
	return classify(&api.ResponseError{StatusCode: http.StatusForbidden, Errors: []string{"permission denied"}})
}

func (c *fakeClient) Login(context.Context) (*api.SecretAuth, error) {
	f := c.v
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logins++
	f.serial++
	t := fmt.Sprintf("hvs.fake%d", f.serial)
	f.tokens[t] = true
	return &api.SecretAuth{ClientToken: t, LeaseDuration: f.tokenTTL, Renewable: true}, nil
}

// check reports a request with a dead token; the caller holds the lock.
func (c *fakeClient) check() error {
	if !c.v.tokens[c.token] {
		return forbidden()
	}
	return nil
}

func (c *fakeClient) Read(_ context.Context, path string) (*api.Secret, error) {
	f := c.v
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	if err := c.check(); err != nil {
		return nil, err
	}
	if f.denied[path] {
		return nil, &permanentError{fmt.Errorf("permission denied to read %s (%w)", path, errForbidden)}
	}
	if strings.HasPrefix(path, "database/creds/") {
		f.leaseReads++
		f.serial++
		id := fmt.Sprintf("%s/%d", path, f.serial)
		f.leases[id] = true
		return &api.Secret{LeaseID: id, LeaseDuration: f.leaseTTL, Renewable: true,
			Data: map[string]any{"username": fmt.Sprintf("v-user-%d", f.serial), "password": "p"}}, nil
	}
	d, ok := f.kv[path]
	if !ok {
		return nil, &permanentError{fmt.Errorf("no secret at %s", path)}
	}
	return &api.Secret{Data: d}, nil
}

func (c *fakeClient) Write(ctx context.Context, path string, _ map[string]any) (*api.Secret, error) {
	return c.Read(ctx, path)
}

func (c *fakeClient) RenewLease(_ context.Context, id string, _ int) (*api.Secret, error) {
	f := c.v
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leaseRenewals++
	if !f.leases[id] {
		return nil, classify(&api.ResponseError{StatusCode: http.StatusBadRequest, Errors: []string{"lease not found"}})
	}
	return &api.Secret{LeaseID: id, LeaseDuration: f.leaseTTL, Renewable: true}, nil
}

func (c *fakeClient) RevokeLease(_ context.Context, id string) error {
	f := c.v
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.leases, id)
	return nil
}

func (c *fakeClient) RenewToken(context.Context, int) (*api.Secret, error) {
	f := c.v
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := c.check(); err != nil {
		return nil, err
	}
	return &api.Secret{Auth: &api.SecretAuth{ClientToken: c.token, LeaseDuration: f.tokenTTL, Renewable: true}}, nil
}

func (c *fakeClient) LookupToken(context.Context) (*api.Secret, error) {
	f := c.v
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups++
	if err := c.check(); err != nil {
		return nil, err
	}
	return &api.Secret{Data: map[string]any{"ttl": f.tokenTTL}}, nil
}

func (c *fakeClient) RevokeToken(context.Context) error {
	f := c.v
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.tokens, c.token)
	return nil
}

func (c *fakeClient) Token() string     { return c.token }
func (c *fakeClient) SetToken(t string) { c.token = t }

// fakeConfig is a sidecar config for the default identity with the given templates (file name
// → template text).
func fakeConfig(t *testing.T, refresh time.Duration, templates ...[2]string) *agentconfig.Config {
	t.Helper()
	cfg := &agentconfig.Config{
		Version: agentconfig.Version, Mode: agentconfig.ModeSidecar,
		Identities: []agentconfig.Identity{{Name: agentconfig.DefaultIdentity, Method: "kubernetes", AuthPath: "auth/kubernetes", Role: "r", Address: "http://vault"}},
		SecretsDir: t.TempDir(), HomeDir: t.TempDir(), ServiceAccountTokenFile: "/dev/null",
		RefreshInterval: agentconfig.Duration(refresh),
	}
	for _, tt := range templates {
		cfg.Secrets = append(cfg.Secrets, agentconfig.Secret{Name: tt[0], Identity: agentconfig.DefaultIdentity, File: tt[0], Perms: 0o600, Template: tt[1]})
	}
	return cfg
}

// fakeAgent is one agent process on the fake Vault.
func fakeAgent(t *testing.T, cfg *agentconfig.Config, v *fakeVault) (*Agent, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	a := NewWithBackends(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		map[string]Backend{agentconfig.DefaultIdentity: v.backend()})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", logs)
		}
	})
	return a, logs
}
