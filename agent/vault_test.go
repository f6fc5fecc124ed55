package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/vault-injector/vault-injector/agentconfig"
	"github.com/vault-injector/vault-injector/test/pgtest"
	"github.com/vault-injector/vault-injector/test/vaulttest"
)

const readAll = `
path "kv/*" { capabilities = ["read"] }
path "secret/data/*" { capabilities = ["read"] }
`

// countingBackend counts reads and writes per path.
type countingBackend struct {
	Backend
	mu    sync.Mutex
	calls map[string]int
}

func (c *countingBackend) count(path string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[path]++
}

func (c *countingBackend) Read(ctx context.Context, path string) (*api.Secret, error) {
	c.count(path)
	return c.Backend.Read(ctx, path)
}

func (c *countingBackend) Write(ctx context.Context, path string, data map[string]any) (*api.Secret, error) {
	c.count(path)
	return c.Backend.Write(ctx, path, data)
}

func TestOnceRendersKVv1AndKVv2(t *testing.T) {
	e := startVault(t, readAll)
	e.write(t, "kv/app", map[string]any{"user": "alice", "password": "s3cr3t-v1", "port": 5432})
	e.write(t, "secret/data/app", map[string]any{"data": map[string]any{"user": "bob", "api_key": "k-v2"}})
	// On KV version 1, data/ is part of the key: read as written (and while the mount is
	// looked up, like secret/data/app).
	e.write(t, "kv/data/app", map[string]any{"user": "carol"})
	cfg := e.config(t,
		agentconfig.Secret{Name: "v1.json", Path: "kv/app"},
		agentconfig.Secret{Name: "v1data.json", Path: "kv/data/app"},
		agentconfig.Secret{Name: "v2.json", Path: "secret/data/app", Perms: 0o400},
		agentconfig.Secret{Name: "app.env", Template: `{{ with secret "secret/data/app" }}USER={{ .Data.data.user }}
API_KEY={{ .Data.data.api_key }}{{ end }}
{{ with secret "kv/app" }}DB={{ .Data.user }}:{{ .Data.password }}@db:{{ .Data.port }}{{ end }}
`},
	)
	cfg.Mode = agentconfig.ModeInit
	a, logs := newTestAgent(t, cfg)
	counter := &countingBackend{Backend: a.backends[agentconfig.DefaultIdentity], calls: map[string]int{}}
	a.backends[agentconfig.DefaultIdentity] = counter

	if err := a.Once(context.Background(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file, want string
		mode       os.FileMode
	}{
		{"v1.json", "{\n  \"password\": \"s3cr3t-v1\",\n  \"port\": 5432,\n  \"user\": \"alice\"\n}", 0o644},
		{"v2.json", "{\n  \"api_key\": \"k-v2\",\n  \"user\": \"bob\"\n}", 0o400},
		{"v1data.json", "{\n  \"user\": \"carol\"\n}", 0o644},
		{"app.env", "USER=bob\nAPI_KEY=k-v2\nDB=alice:s3cr3t-v1@db:5432\n", 0o644},
	} {
		if got := readFile(t, cfg.SecretsDir, tc.file); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.file, got, tc.want)
		}
		fi, err := os.Stat(filepath.Join(cfg.SecretsDir, tc.file))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != tc.mode {
			t.Errorf("%s: mode %v, want %v", tc.file, fi.Mode().Perm(), tc.mode)
		}
	}
	// Two templates read each path; each is fetched once.
	for _, p := range []string{"kv/app", "secret/data/app"} {
		if n := counter.calls[p]; n != 1 {
			t.Errorf("%s fetched %d times, want once", p, n)
		}
	}
	// No temp files left beside the outputs.
	ents, _ := os.ReadDir(cfg.SecretsDir)
	if len(ents) != 4 {
		t.Errorf("secrets dir holds %d entries, want the 4 files", len(ents))
	}
	token := stateToken(t, cfg.HomeDir)
	sa, _ := os.ReadFile(e.tokenFile)
	assertNoSecretsLogged(t, logs.String(), string(token), string(sa), "s3cr3t-v1", "k-v2")
}

func TestSidecarRerendersChangedSecretOnly(t *testing.T) {
	e := startVault(t, readAll)
	e.write(t, "kv/a", map[string]any{"v": "one"})
	e.write(t, "kv/b", map[string]any{"v": "steady"})
	cfg := e.config(t,
		agentconfig.Secret{Name: "a", Template: `{{ with secret "kv/a" }}{{ .Data.v }}{{ end }}`},
		agentconfig.Secret{Name: "b", Template: `{{ with secret "kv/b" }}{{ .Data.v }}{{ end }}`},
	)
	cfg.RefreshInterval = agentconfig.Duration(time.Second)
	a, logs := newTestAgent(t, cfg)
	r := runAgent(t, a)
	waitReady(t, cfg, r)
	if got := readFile(t, cfg.SecretsDir, "a"); got != "one" {
		t.Fatalf("a = %q, want one", got)
	}
	before, err := os.Stat(filepath.Join(cfg.SecretsDir, "b"))
	if err != nil {
		t.Fatal(err)
	}
	changedAt := time.Now()
	e.write(t, "kv/a", map[string]any{"v": "two"})
	eventually(t, 5*time.Second, "file a to be re-rendered", func() bool { return readFile(t, cfg.SecretsDir, "a") == "two" })
	t.Logf("change picked up after %s (refresh interval 1s)", time.Since(changedAt).Round(10*time.Millisecond))
	// Let another refresh pass run: b's content is the same, so it must not be rewritten.
	time.Sleep(1500 * time.Millisecond)
	after, err := os.Stat(filepath.Join(cfg.SecretsDir, "b"))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) || !before.ModTime().Equal(after.ModTime()) {
		t.Error("file b was rewritten although its secret did not change")
	}
	if !strings.Contains(logs.String(), "files changed") || strings.Contains(logs.String(), "files=a,b") {
		t.Errorf("log should report exactly file a as changed:\n%s", logs)
	}
}

func TestOnceVaultUnreachableFailsAfterBudget(t *testing.T) {
	e := startVault(t, readAll)
	cfg := e.config(t, agentconfig.Secret{Name: "a", Path: "kv/a"})
	// A loopback port nobody listens on.
	cfg.Identities[0].Address = "http://127.0.0.1:" + closedPort(t)
	a, _ := newTestAgent(t, cfg)
	start := time.Now()
	err := a.Once(context.Background(), 1500*time.Millisecond)
	took := time.Since(start)
	if err == nil {
		t.Fatal("Once succeeded without Vault")
	}
	for _, want := range []string{"gave up after 1.5s", cfg.Identities[0].Address, "connection refused"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if took > 5*time.Second {
		t.Errorf("Once kept retrying for %s with a budget of 1.5s", took)
	}
}

func closedPort(t *testing.T) string {
	t.Helper()
	s := vaulttest.StartTokenReviewer() // any loopback listener, closed at once
	port := s.URL[strings.LastIndex(s.URL, ":")+1:]
	s.Close()
	return port
}

func TestForbiddenPathFailsAtOnceWithReason(t *testing.T) {
	e := startVault(t, `path "secret/data/app" { capabilities = ["read"] }`)
	e.write(t, "secret/data/other", map[string]any{"data": map[string]any{"x": "y"}})
	cfg := e.config(t, agentconfig.Secret{Name: "other", Path: "secret/data/other"})
	a, _ := newTestAgent(t, cfg)
	start := time.Now()
	err := a.Once(context.Background(), time.Minute)
	if err == nil {
		t.Fatal("Once succeeded on a forbidden path")
	}
	want := `permission denied to read secret/data/other: the policies of role "app" do not allow it (HTTP 403)`
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q\nwant it to contain %q", err, want)
	}
	if time.Since(start) > 5*time.Second {
		t.Error("a 403 was retried: it cannot heal and must fail at once")
	}
}

func TestLoginDeniedNamesRoleAndServiceAccount(t *testing.T) {
	e := startVault(t, readAll)
	// A token for another service account than the role is bound to.
	other, err := e.reviewer.MintFile(t.TempDir(), testNamespace, "intruder")
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.config(t, agentconfig.Secret{Name: "a", Path: "kv/a"})
	cfg.ServiceAccountTokenFile = other
	a, logs := newTestAgent(t, cfg)
	err = a.Once(context.Background(), time.Minute)
	if err == nil {
		t.Fatal("login succeeded for a service account the role does not allow")
	}
	want := `Vault role "app" at auth/kubernetes does not allow service account demo/intruder`
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q\nwant it to contain %q", err, want)
	}
	sa, _ := os.ReadFile(other)
	assertNoSecretsLogged(t, logs.String()+err.Error(), string(sa))
}

func TestTemplateErrorsNameTemplateAndLine(t *testing.T) {
	e := startVault(t, readAll)
	e.write(t, "kv/a", map[string]any{"v": "x"})
	for _, tc := range []struct {
		name, text, want string
	}{
		{"syntax", "line one\n{{ with secret \"kv/a\" }}\n{{ .Data.v }\n", `template syntax: template: syntax:3: unexpected "}" in operand`},
		{"unclosed", "{{ with secret \"kv/a\" }}{{ .Data.v }}", `template unclosed: template: unclosed:1: unexpected EOF`},
		{"unknownfunc", "a\nb\n{{ nosuchfunc }}", `template unknownfunc: template: unknownfunc:3: function "nosuchfunc" not defined`},
		{"badarg", `{{ secret "kv/a" "novalue" }}`, `secret argument "novalue": expected key=value`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := e.config(t, agentconfig.Secret{Name: tc.name, Template: tc.text})
			a, _ := newTestAgent(t, cfg)
			err := a.Once(context.Background(), time.Minute)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestSidecarKeepsFilesWhileVaultIsDownAndRecovers(t *testing.T) {
	e := startVault(t, readAll)
	e.write(t, "kv/a", map[string]any{"v": "before"})
	cfg := e.config(t, agentconfig.Secret{Name: "a", Template: `{{ with secret "kv/a" }}{{ .Data.v }}{{ end }}`})
	cfg.RefreshInterval = agentconfig.Duration(time.Second)
	a, logs := newTestAgent(t, cfg)
	r := runAgent(t, a)
	waitReady(t, cfg, r)

	bin, err := vaulttest.Binary()
	if err != nil {
		t.Fatal(err)
	}
	port := e.vault.Port()
	if err := e.vault.Stop(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the agent to notice Vault is gone", func() bool {
		return strings.Contains(logs.String(), "keeping the last good files")
	})
	if got := readFile(t, cfg.SecretsDir, "a"); got != "before" {
		t.Fatalf("file changed to %q while Vault was down", got)
	}
	select {
	case err := <-r.done:
		t.Fatalf("agent exited while Vault was down: %v", err)
	default:
	}
	// A dev server starts empty: the agent's token is unknown to it and must be replaced by a
	// new login.
	v2, err := vaulttest.StartOn(context.Background(), bin, t.TempDir(), port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v2.Stop() })
	e.vault = v2
	e.setup(t, readAll)
	e.write(t, "kv/a", map[string]any{"v": "after"})
	eventually(t, 30*time.Second, "the file to show the value from the restarted Vault", func() bool {
		return readFile(t, cfg.SecretsDir, "a") == "after"
	})
}

func TestPKIIssuesCertificateAndReissuesBeforeExpiry(t *testing.T) {
	e := startVault(t, `path "pki/issue/web" { capabilities = ["create", "update"] }`)
	ctx := context.Background()
	if err := e.root.Sys().MountWithContext(ctx, "pki", &api.MountInput{Type: "pki", Config: api.MountConfigInput{MaxLeaseTTL: "1h"}}); err != nil {
		t.Fatal(err)
	}
	e.write(t, "pki/root/generate/internal", map[string]any{"common_name": "test-ca", "ttl": "1h", "key_type": "ec"})
	e.write(t, "pki/roles/web", map[string]any{"allowed_domains": "example.com", "allow_subdomains": true, "max_ttl": "1h", "key_type": "ec"})
	const issue = `secret "pki/issue/web" "common_name=app.example.com" "ttl=6s"`
	cfg := e.config(t,
		agentconfig.Secret{Name: "tls.crt", Template: `{{ with ` + issue + ` }}{{ .Data.certificate }}{{ end }}`},
		agentconfig.Secret{Name: "tls.key", Template: `{{ with ` + issue + ` }}{{ .Data.private_key }}{{ end }}`, Perms: 0o400},
		agentconfig.Secret{Name: "ca.crt", Template: `{{ with ` + issue + ` }}{{ .Data.issuing_ca }}{{ end }}`},
	)
	a, logs := newTestAgent(t, cfg)
	r := runAgent(t, a)
	waitReady(t, cfg, r)

	load := func() *x509.Certificate {
		t.Helper()
		pair, err := tls.LoadX509KeyPair(filepath.Join(cfg.SecretsDir, "tls.crt"), filepath.Join(cfg.SecretsDir, "tls.key"))
		if err != nil {
			t.Fatalf("the rendered certificate and key do not form a pair (all three templates must share one issue call): %v", err)
		}
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode([]byte(readFile(t, cfg.SecretsDir, "ca.crt")))
		ca, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AddCert(ca)
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "app.example.com"}); err != nil {
			t.Fatalf("rendered certificate does not verify against the rendered CA: %v", err)
		}
		return leaf
	}
	first := load()
	if first.Subject.CommonName != "app.example.com" {
		t.Fatalf("CN %q", first.Subject.CommonName)
	}
	var second *x509.Certificate
	eventually(t, 10*time.Second, "a re-issued certificate", func() bool {
		if c := load(); c.SerialNumber.Cmp(first.SerialNumber) != 0 {
			second = c
			return true
		}
		return false
	})
	if !time.Now().Before(first.NotAfter) {
		t.Errorf("re-issued only after the first certificate expired at %s", first.NotAfter)
	}
	t.Logf("certificate valid until %s re-issued %s before expiry", first.NotAfter.Format(time.TimeOnly), time.Until(first.NotAfter).Round(100*time.Millisecond))
	if second.NotAfter.Before(first.NotAfter) {
		t.Errorf("re-issued certificate ends %s, before the first (%s)", second.NotAfter, first.NotAfter)
	}
	key := readFile(t, cfg.SecretsDir, "tls.key")
	assertNoSecretsLogged(t, logs.String(), key)
}

func TestShutdownLeavesUnleasedSecretsAlone(t *testing.T) {
	e := startVault(t, readAll)
	e.write(t, "kv/a", map[string]any{"v": "x"})
	cfg := e.config(t, agentconfig.Secret{Name: "a", Path: "kv/a"})
	a, logs := newTestAgent(t, cfg)
	r := runAgent(t, a)
	waitReady(t, cfg, r)
	token := stateToken(t, cfg.HomeDir)
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	// Nothing leased and revoke-on-shutdown unset: the token is left to expire (a classic
	// sidecar's restart reuses it).
	if _, err := e.root.Auth().Token().Lookup(token); err != nil {
		t.Errorf("token was revoked although nothing was leased: %v", err)
	}
	if !strings.Contains(logs.String(), "leases and token left to expire") {
		t.Errorf("shutdown not logged:\n%s", logs)
	}
}

// TestDynamicDatabaseCredentials is the service-binding scenario: Vault's database engine
// issues PostgreSQL users with short TTLs; the agent renews the lease, switches to new
// credentials before max_ttl while the old ones still work, and revokes on shutdown.
func TestDynamicDatabaseCredentials(t *testing.T) {
	e := startVault(t, `path "database/creds/app" { capabilities = ["read"] }`)
	pg := pgtest.StartT(t)
	ctx := context.Background()
	if err := e.root.Sys().MountWithContext(ctx, "database", &api.MountInput{Type: "database"}); err != nil {
		t.Fatal(err)
	}
	e.write(t, "database/config/pg", map[string]any{
		"plugin_name":    "postgresql-database-plugin",
		"connection_url": pg.URL("{{username}}", "{{password}}"),
		"username":       "postgres",
		"password":       pgtest.Password,
		"allowed_roles":  "app",
	})
	const defaultTTL, maxTTL = 3 * time.Second, 9 * time.Second
	e.write(t, "database/roles/app", map[string]any{
		"db_name":             "pg",
		"creation_statements": `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`,
		"default_ttl":         defaultTTL.String(),
		"max_ttl":             maxTTL.String(),
	})
	cfg := e.config(t, agentconfig.Secret{Name: "db.env", Perms: 0o400,
		Template: `{{ with secret "database/creds/app" }}username={{ .Data.username }}
password={{ .Data.password }}
{{ end }}`})
	a, logs := newTestAgent(t, cfg)
	r := runAgent(t, a)
	issued := time.Now()
	waitReady(t, cfg, r)

	creds := func() (user, pass string) {
		t.Helper()
		user, pass, err := pgtest.ParseCredentials(readFile(t, cfg.SecretsDir, "db.env"))
		if err != nil {
			t.Fatal(err)
		}
		return user, pass
	}
	connects := func(user, pass string) error { return pg.CanLogin(ctx, user, pass) }
	u1, p1 := creds()
	if err := connects(u1, p1); err != nil {
		t.Fatalf("rendered credentials do not connect: %v", err)
	}
	// Past the default TTL the same user still works: the lease (and the role's VALID UNTIL)
	// was renewed. Without renewal Vault would have dropped the role by now.
	time.Sleep(time.Until(issued.Add(defaultTTL + time.Second)))
	if u, _ := creds(); u != u1 {
		t.Fatalf("credentials replaced before max_ttl was near (%s → %s)", u1, u)
	}
	if err := connects(u1, p1); err != nil {
		t.Fatalf("credentials stopped working after the default TTL: the lease was not renewed: %v", err)
	}
	if !strings.Contains(logs.String(), "lease renewed") {
		t.Error("no lease renewal logged")
	}
	// Before max_ttl new credentials appear, while the old ones still work (overlap).
	var u2, p2 string
	eventually(t, maxTTL, "new credentials before max_ttl", func() bool {
		u2, p2 = creds()
		return u2 != u1
	})
	switched := time.Since(issued)
	if switched >= maxTTL {
		t.Fatalf("new credentials appeared %s after issue, not before max_ttl %s", switched, maxTTL)
	}
	// Renewing at half the lease sees the cap with at least half a lease left; allow for
	// jitter and a loaded machine.
	if overlap := maxTTL - switched; overlap < defaultTTL/2-700*time.Millisecond {
		t.Errorf("only %s of overlap between new credentials and the old ones' end, want about %s or more", overlap.Round(100*time.Millisecond), defaultTTL/2)
	}
	if err := connects(u1, p1); err != nil {
		t.Errorf("old credentials already dead when the new ones appeared (no overlap): %v", err)
	}
	if err := connects(u2, p2); err != nil {
		t.Fatalf("new credentials do not connect: %v", err)
	}
	t.Logf("credentials switched %s after issue (default_ttl %s, max_ttl %s)", switched.Round(100*time.Millisecond), defaultTTL, maxTTL)

	// Shutdown revokes the lease: Vault drops the user.
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	// Token revocation revokes its leases; Vault may finish dropping the user just after.
	eventually(t, 5*time.Second, "the database user to be dropped after shutdown", func() bool {
		ok, err := pg.RoleExists(ctx, u2)
		return err == nil && !ok
	})
	if !strings.Contains(logs.String(), "revoked leases and token") {
		t.Errorf("revocation not logged:\n%s", logs)
	}
	assertNoSecretsLogged(t, logs.String(), p1, p2)
}

// TestNotifyOnChange: after a re-render the agent signals the app's process by name (as in a
// pod with shareProcessNamespace) and runs the notify command; not on the first render.
func TestNotifyOnChange(t *testing.T) {
	e := startVault(t, readAll)
	e.write(t, "kv/a", map[string]any{"v": "one"})
	// A process with a name nothing else on the machine has, standing in for the app. The
	// agent signals every process of that name on the machine, so the name carries this test
	// process's PID: two runs of the test at once (two clones) must not signal each other's
	// (the kernel keeps 15 characters of a name).
	name := fmt.Sprintf("vi-notify-%d", os.Getpid()%100000)
	app := filepath.Join(t.TempDir(), name)
	if err := os.Link("/bin/sleep", app); err != nil {
		b, err := os.ReadFile("/bin/sleep")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(app, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A test run under nohup ignores SIGHUP, and children inherit ignored signals across exec;
	// a handler in this process is reset to the default in the child, as in a real pod.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	t.Cleanup(func() { signal.Stop(hup) })
	proc := exec.Command(app, "60")
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- proc.Wait() }()
	t.Cleanup(func() { _ = proc.Process.Kill() })

	marker := filepath.Join(t.TempDir(), "notified")
	cfg := e.config(t, agentconfig.Secret{Name: "a", Template: `{{ with secret "kv/a" }}{{ .Data.v }}{{ end }}`})
	cfg.RefreshInterval = agentconfig.Duration(time.Second)
	cfg.Notify = &agentconfig.Notify{Signal: "SIGHUP", Process: name, Command: []string{"/bin/sh", "-c", "echo reloaded >> " + marker}}
	a, logs := newTestAgent(t, cfg)
	r := runAgent(t, a)
	waitReady(t, cfg, r)
	time.Sleep(1500 * time.Millisecond) // a refresh pass with nothing changed
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("notified although no file changed")
	}
	select {
	case err := <-exited:
		t.Fatalf("app signalled although no file changed: %v", err)
	default:
	}

	e.write(t, "kv/a", map[string]any{"v": "two"})
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGHUP {
			t.Fatalf("app ended with %v, want SIGHUP", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("app not signalled within 10s of the change\n%s", logs)
	}
	eventually(t, 5*time.Second, "the notify command to run", func() bool {
		b, err := os.ReadFile(marker)
		return err == nil && string(b) == "reloaded\n"
	})
}

// TestMainOnceExitCodes drives the command as the init container does: exit 0 with the files
// written, or exit 1 with the reason as the container's termination message.
func TestMainOnceExitCodes(t *testing.T) {
	e := startVault(t, `path "kv/a" { capabilities = ["read"] }`)
	e.write(t, "kv/a", map[string]any{"v": "x"})
	TerminationLog = filepath.Join(t.TempDir(), "termination-log")
	t.Cleanup(func() { TerminationLog = "/dev/termination-log" })
	for _, tc := range []struct {
		name, path string
		code       int
		message    string
	}{
		{"allowed", "kv/a", 0, ""},
		{"forbidden", "kv/b", 1, "permission denied to read kv/b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := e.config(t, agentconfig.Secret{Name: "out", Path: tc.path})
			b, _ := cfg.Marshal()
			file := filepath.Join(t.TempDir(), "config.json")
			if err := os.WriteFile(file, b, 0o644); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr strings.Builder
			code := Main(context.Background(), []string{"--config", file, "--once", "--retry-budget", "2s"}, &stdout, &stderr)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s", code, tc.code, stderr.String())
			}
			if tc.code == 0 {
				if got := readFile(t, cfg.SecretsDir, "out"); !strings.Contains(got, `"v": "x"`) {
					t.Errorf("out = %q", got)
				}
				return
			}
			msg, _ := os.ReadFile(TerminationLog)
			if !strings.Contains(string(msg), tc.message) || !strings.Contains(stderr.String(), tc.message) {
				t.Errorf("termination message %q / stderr %q: want %q in both", msg, stderr.String(), tc.message)
			}
		})
	}
}

// TestTLSVaultWithCAFile: the agent verifies Vault's certificate against the configured CA
// file, and refuses the server when it is not given one.
func TestTLSVaultWithCAFile(t *testing.T) {
	v, err := vaulttest.StartTLS(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Stop() })
	e := &vaultEnv{vault: v, reviewer: vaulttest.StartTokenReviewer(), dir: t.TempDir()}
	t.Cleanup(e.reviewer.Close)
	e.setup(t, readAll)
	if e.tokenFile, err = e.reviewer.MintFile(e.dir, testNamespace, testSA); err != nil {
		t.Fatal(err)
	}
	e.write(t, "kv/a", map[string]any{"v": "over TLS"})

	cfg := e.config(t, agentconfig.Secret{Name: "a", Template: `{{ with secret "kv/a" }}{{ .Data.v }}{{ end }}`})
	cfg.Identities[0].CACertFile = v.CACert
	a, _ := newTestAgent(t, cfg)
	if err := a.Once(context.Background(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, cfg.SecretsDir, "a"); got != "over TLS" {
		t.Fatalf("a = %q", got)
	}

	cfg = e.config(t, agentconfig.Secret{Name: "a", Path: "kv/a"})
	a, _ = newTestAgent(t, cfg)
	err = a.Once(context.Background(), time.Second)
	if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("without the CA file: %v, want a certificate verification error", err)
	}
}

// TestNewLoginAtTokenMaxTTL: when the token reaches its max TTL the agent logs in again and
// keeps rendering; a secret changed afterwards still reaches the file.
func TestNewLoginAtTokenMaxTTL(t *testing.T) {
	e := startVault(t, readAll)
	if err := e.vault.Role(context.Background(), "kubernetes", "short", testNamespace, testSA, readAll,
		map[string]any{"token_ttl": "2s", "token_max_ttl": "4s"}); err != nil {
		t.Fatal(err)
	}
	e.write(t, "kv/a", map[string]any{"v": "one"})
	cfg := e.config(t, agentconfig.Secret{Name: "a", Template: `{{ with secret "kv/a" }}{{ .Data.v }}{{ end }}`})
	cfg.Identities[0].Role = "short"
	cfg.RefreshInterval = agentconfig.Duration(time.Second)
	a, logs := newTestAgent(t, cfg)
	r := runAgent(t, a)
	waitReady(t, cfg, r)
	eventually(t, 10*time.Second, "a new login after the token's max TTL", func() bool {
		return strings.Contains(logs.String(), "logged in again")
	})
	time.Sleep(2 * time.Second) // past the first token's end
	e.write(t, "kv/a", map[string]any{"v": "two"})
	eventually(t, 10*time.Second, "the change rendered with the new token", func() bool {
		return readFile(t, cfg.SecretsDir, "a") == "two"
	})
	if strings.Contains(logs.String(), "permission denied") {
		t.Errorf("the agent used an expired token:\n%s", logs)
	}
}

// TestClassicSidecarReusesInitToken: the classic style's init container logs in and renders;
// the sidecar started after it adopts the token left in the home volume instead of logging in
// again (one TokenReview for the pod, not two).
func TestClassicSidecarReusesInitToken(t *testing.T) {
	e := startVault(t, readAll)
	e.write(t, "kv/a", map[string]any{"v": "x"})
	cfg := e.config(t, agentconfig.Secret{Name: "a", Path: "kv/a"})
	initAgent, _ := newTestAgent(t, cfg)
	if err := initAgent.Once(context.Background(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	reviews := e.reviewer.Reviews()
	if reviews != 1 {
		t.Fatalf("init container: %d TokenReviews, want 1", reviews)
	}
	sidecar, logs := newTestAgent(t, cfg)
	r := runAgent(t, sidecar)
	waitReady(t, cfg, r)
	if !strings.Contains(logs.String(), "adopted the state of this pod's previous agent\" tokens=1") {
		t.Errorf("sidecar did not adopt the init container's token:\n%s", logs)
	}
	if got := e.reviewer.Reviews(); got != reviews {
		t.Errorf("sidecar logged in again (%d TokenReviews in all)", got)
	}
}
