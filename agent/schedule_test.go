package agent

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/vault-injector/vault-injector/agentconfig"
)

// fakeBackend issues a new lease on every read and counts reads and logins; its token cannot
// be renewed past the TTL it was issued with.
type fakeBackend struct {
	reads, logins, revokes int
	token                  string
}

func (f *fakeBackend) Login(context.Context) (*api.SecretAuth, error) {
	f.logins++
	return &api.SecretAuth{ClientToken: "t", LeaseDuration: 60, Renewable: true}, nil
}

func (f *fakeBackend) Read(context.Context, string) (*api.Secret, error) {
	f.reads++
	return &api.Secret{LeaseID: "db/creds/app/" + string(rune('a'+f.reads)), LeaseDuration: 600, Renewable: true,
		Data: map[string]any{"username": "u" + string(rune('0'+f.reads))}}, nil
}

func (f *fakeBackend) Write(ctx context.Context, p string, _ map[string]any) (*api.Secret, error) {
	return f.Read(ctx, p)
}
func (f *fakeBackend) RenewLease(context.Context, string, int) (*api.Secret, error) {
	return &api.Secret{LeaseDuration: 600, Renewable: true}, nil
}
func (f *fakeBackend) RevokeLease(context.Context, string) error { f.revokes++; return nil }

// RenewToken answers with less than asked: the token is at its max TTL.
func (f *fakeBackend) RenewToken(context.Context, int) (*api.Secret, error) {
	return &api.Secret{Auth: &api.SecretAuth{ClientToken: "t", LeaseDuration: 5, Renewable: true}}, nil
}
func (f *fakeBackend) RevokeToken(context.Context) error { f.revokes++; return nil }
func (f *fakeBackend) LookupToken(context.Context) (*api.Secret, error) {
	return &api.Secret{Data: map[string]any{"ttl": 5}}, nil
}
func (f *fakeBackend) Token() string     { return f.token }
func (f *fakeBackend) SetToken(t string) { f.token = t }

// A token at its max TTL is replaced by a new login, and leased secrets obtained with the old
// token are fetched again under the new one, before Vault revokes them with the old token.
func TestNewLoginRefetchesLeasedSecrets(t *testing.T) {
	cfg := &agentconfig.Config{
		Version: agentconfig.Version, Mode: agentconfig.ModeSidecar,
		Identities: []agentconfig.Identity{{Name: agentconfig.DefaultIdentity, Method: "kubernetes", AuthPath: "auth/kubernetes", Role: "r", Address: "http://vault"}},
		Secrets: []agentconfig.Secret{{Name: "db", Identity: agentconfig.DefaultIdentity, File: "db", Perms: 0o600,
			Template: `{{ with secret "database/creds/app" }}{{ .Data.username }}{{ end }}`}},
		SecretsDir: t.TempDir(), HomeDir: t.TempDir(), ServiceAccountTokenFile: "/dev/null",
		RefreshInterval: agentconfig.Duration(time.Hour),
	}
	fb := &fakeBackend{}
	a := NewWithBackends(cfg, slog.New(slog.DiscardHandler), map[string]Backend{agentconfig.DefaultIdentity: fb})
	now := time.Now()
	a.now = func() time.Time { return now }
	ctx := context.Background()
	if _, err := a.pass(ctx); err != nil {
		t.Fatal(err)
	}
	if fb.reads != 1 || fb.logins != 1 {
		t.Fatalf("first pass: %d reads, %d logins", fb.reads, fb.logins)
	}
	// Past the token's renewal time (2/3 of 60 s); the lease itself is far from due.
	now = now.Add(45 * time.Second)
	a.maintain(ctx) // renewal capped -> new login, leased secret marked for refetch
	if fb.logins != 2 {
		t.Fatalf("%d logins after the token reached its max TTL, want 2", fb.logins)
	}
	a.maintain(ctx) // drops the marked entry
	res, err := a.pass(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fb.reads != 2 || len(res.changed) != 1 {
		t.Fatalf("after the new login: %d reads, changed %v; want the leased secret fetched again", fb.reads, res.changed)
	}
}

func TestBackoffGrowsWithJitterAndCaps(t *testing.T) {
	b := newBackoff()
	prevMax := time.Duration(0)
	for i := 0; i < 12; i++ {
		base := 250 * time.Millisecond << min(i, 7)
		d := b.next()
		if d < base/2 || d > base {
			t.Fatalf("attempt %d: %s outside [%s, %s]", i, d, base/2, base)
		}
		if base < prevMax {
			t.Fatal("backoff shrank")
		}
		prevMax = base
	}
	if d := b.next(); d > 32*time.Second {
		t.Errorf("backoff %s exceeds the 32 s cap", d)
	}
	b.reset()
	if d := b.next(); d > 250*time.Millisecond {
		t.Errorf("after reset: %s, want <= 250ms", d)
	}
}

// revoke-on-shutdown: on by default once a secret is leased, and "false" keeps leases and token
// alive past the pod (for credentials another process keeps using).
func TestRevokeOnShutdownSetting(t *testing.T) {
	off := false
	for _, tc := range []struct {
		name    string
		setting *bool
		revokes int
	}{
		{"default with a lease", nil, 2}, // the lease and the token
		{"explicitly off", &off, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &agentconfig.Config{
				Version: agentconfig.Version, Mode: agentconfig.ModeSidecar,
				Identities: []agentconfig.Identity{{Name: agentconfig.DefaultIdentity, Method: "kubernetes", AuthPath: "auth/kubernetes", Role: "r", Address: "http://vault"}},
				Secrets:    []agentconfig.Secret{{Name: "db", Identity: agentconfig.DefaultIdentity, Path: "database/creds/app", File: "db", Perms: 0o600}},
				SecretsDir: t.TempDir(), HomeDir: t.TempDir(), ServiceAccountTokenFile: "/dev/null",
				RefreshInterval: agentconfig.Duration(time.Hour), RevokeOnShutdown: tc.setting,
			}
			fb := &fakeBackend{}
			a := NewWithBackends(cfg, slog.New(slog.DiscardHandler), map[string]Backend{agentconfig.DefaultIdentity: fb})
			if _, err := a.pass(context.Background()); err != nil {
				t.Fatal(err)
			}
			a.shutdown()
			if fb.revokes != tc.revokes {
				t.Errorf("%d revocations, want %d", fb.revokes, tc.revokes)
			}
		})
	}
}
