package agent

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/vault-injector/vault-injector/agentconfig"
)

// pathConfig is fakeConfig with outputs of the default template (a path, no template).
func pathConfig(t *testing.T, paths ...string) *agentconfig.Config {
	cfg := fakeConfig(t, time.Hour)
	for _, p := range paths {
		name := strings.ReplaceAll(p, "/", "-")
		cfg.Secrets = append(cfg.Secrets, agentconfig.Secret{Name: name, Identity: agentconfig.DefaultIdentity, File: name, Perms: 0o600, Path: p})
	}
	return cfg
}

// barrierBackend holds every read until want reads are in flight at once (or a deadline),
// and records the most it saw.
type barrierBackend struct {
	*fakeClient
	want int

	mu       sync.Mutex
	inFlight int
	most     int
	arrived  chan struct{}
}

func (b *barrierBackend) Read(ctx context.Context, path string) (*api.Secret, error) {
	b.mu.Lock()
	b.inFlight++
	b.most = max(b.most, b.inFlight)
	if b.inFlight == b.want {
		close(b.arrived)
	}
	b.mu.Unlock()
	select {
	case <-b.arrived:
	case <-time.After(2 * time.Second):
	}
	defer func() { b.mu.Lock(); b.inFlight--; b.mu.Unlock() }()
	return b.fakeClient.Read(ctx, path)
}

// onceWithBarrier renders cfg once against v (which holds kv/a, kv/b and kv/c) through a
// barrierBackend waiting for 3 reads, and checks that the 3 were in flight at once and each
// read once.
func onceWithBarrier(t *testing.T, cfg *agentconfig.Config, v *fakeVault) (*Agent, *barrierBackend) {
	t.Helper()
	b := &barrierBackend{fakeClient: v.backend(), want: 3, arrived: make(chan struct{})}
	a := NewWithBackends(cfg, discardLog(), map[string]Backend{agentconfig.DefaultIdentity: b})
	if err := a.Once(context.Background(), time.Second); err != nil {
		t.Fatal(err)
	}
	if b.most != 3 {
		t.Errorf("at most %d reads in flight; want the 3 at once", b.most)
	}
	if got := v.count(&v.reads); got != 3 {
		t.Errorf("%d reads; want 3 (each path once)", got)
	}
	if len(a.prefetched) != 0 {
		t.Errorf("%d prefetched answers left over", len(a.prefetched))
	}
	return a, b
}

func abcVault() *fakeVault {
	v := newFakeVault()
	for _, p := range []string{"kv/a", "kv/b", "kv/c"} {
		v.set(p, map[string]any{"v": p})
	}
	return v
}

// The secrets of outputs without a template are read at once, each once, after one login, and
// render as before.
func TestPrefetchReadsDefaultTemplateSecretsConcurrently(t *testing.T) {
	v := abcVault()
	cfg := pathConfig(t, "kv/a", "kv/b", "kv/c")
	a, b := onceWithBarrier(t, cfg, v)
	if got := v.count(&v.logins); got != 1 {
		t.Errorf("%d logins; want 1", got)
	}
	if got := fileContent(cfg.SecretsDir, "kv-b"); !strings.Contains(got, `"v": "kv/b"`) {
		t.Errorf("kv-b = %q", got)
	}
	// Later passes (refreshes) read in turn.
	clear(a.entries)
	b.most, b.want, b.arrived = 0, 0, make(chan struct{})
	close(b.arrived)
	if _, err := a.pass(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b.most != 1 {
		t.Errorf("a refresh had %d reads in flight; want 1", b.most)
	}
}

// A read refused with a token that no longer works is not taken by the later outputs: the
// first one's 403 has the token checked and dropped, and the others log in again and read, in
// the same pass, as without prefetching.
func TestPrefetchDropsAnswersOfADeadToken(t *testing.T) {
	v := newFakeVault()
	for _, p := range []string{"kv/a", "kv/b", "kv/c"} {
		v.set(p, map[string]any{"v": p})
	}
	cfg := pathConfig(t, "kv/a", "kv/b", "kv/c")
	a, _ := fakeAgent(t, cfg, v)
	ctx := context.Background()
	if _, err := a.pass(ctx); err != nil {
		t.Fatal(err)
	}
	v.revokeAllTokens()
	clear(a.entries) // the refresh interval passed
	// As if this were the first pass of the process (the token died between the adoption
	// of the pod's state, which checks it, and the first pass).
	a.prefetchDone = false
	v.set("kv/c", map[string]any{"v": "new"})
	_, err := a.pass(ctx)
	if err == nil || !errors.Is(err, errForbidden) {
		t.Fatalf("pass with a revoked token: %v; want the first output's 403", err)
	}
	if got := v.count(&v.logins); got != 2 {
		t.Errorf("%d logins; want 2 (one new login after the token was found dead)", got)
	}
	if got := fileContent(cfg.SecretsDir, "kv-c"); !strings.Contains(got, `"v": "new"`) {
		t.Errorf("kv-c = %q; want it read again under the new token in the same pass", got)
	}
	// 3 reads, then 3 with the dead token ahead of the pass, then kv/b and kv/c again.
	if got := v.count(&v.reads); got != 8 {
		t.Errorf("%d reads; want 8", got)
	}
}

// failingLogin refuses every login.
type failingLogin struct {
	*fakeClient
	logins int
}

func (f *failingLogin) Login(context.Context) (*api.SecretAuth, error) {
	f.logins++
	return nil, errors.New("role refused the service account")
}

// A failed login is reported by the first output and tried again by the next ones, as without
// prefetching: no extra login, no read.
func TestPrefetchLoginFailureCountsAsTheFirstFetch(t *testing.T) {
	v := newFakeVault()
	cfg := pathConfig(t, "kv/a", "kv/b", "kv/c")
	b := &failingLogin{fakeClient: v.backend()}
	a := NewWithBackends(cfg, discardLog(), map[string]Backend{agentconfig.DefaultIdentity: b})
	_, err := a.pass(context.Background())
	if err == nil || strings.Count(err.Error(), "role refused") != 3 {
		t.Fatalf("pass: %v; want the login error for each of the 3 outputs", err)
	}
	if b.logins != 3 {
		t.Errorf("%d logins; want 3 (one per output, as fetch does)", b.logins)
	}
	if got := v.count(&v.reads); got != 0 {
		t.Errorf("%d reads without a token", got)
	}
}

// What was read ahead and not taken (the pass stopped early) is cached: a lease is then held,
// renewed and revoked like any other.
func TestPrefetchKeepsUntakenLeases(t *testing.T) {
	v := newFakeVault()
	cfg := pathConfig(t, "database/creds/a", "database/creds/b")
	a, _ := fakeAgent(t, cfg, v)
	ctx, cancel := context.WithCancel(context.Background())
	a.prefetch(ctx, a.templates())
	cancel()
	if _, err := a.pass(ctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Logf("pass: %v", err)
	}
	if len(a.entries) != 2 || v.count(&v.leaseReads) != 2 {
		t.Fatalf("%d entries after %d leased reads; want both leases cached", len(a.entries), v.count(&v.leaseReads))
	}
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }
