package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vault-injector/vault-injector/agentconfig"
)

const (
	dbTemplate   = `{{ with secret "database/creds/app" }}{{ .Data.username }}{{ end }}`
	badTemplate  = `{{ with secret "kv/encoded" }}{{ base64Decode .Data.v }}{{ end }}`
	goodTemplate = `{{ with secret "kv/plain" }}{{ .Data.v }}{{ end }}`
)

func fileContent(dir, name string) string {
	b, _ := os.ReadFile(filepath.Join(dir, name))
	return string(b)
}

// While one template fails on a value it cannot decode, the lease of another file keeps being
// renewed (TTL 2 s), a third file keeps following Vault, no second login happens, and once the
// value is fixed in Vault the failed file recovers within one refresh.
func TestFailingTemplateKeepsRenewalsAndOtherFilesGoing(t *testing.T) {
	v := newFakeVault()
	v.set("kv/encoded", map[string]any{"v": "aGVsbG8="}) // "hello"
	v.set("kv/plain", map[string]any{"v": "one"})
	cfg := fakeConfig(t, 200*time.Millisecond, [2]string{"db", dbTemplate}, [2]string{"decoded", badTemplate}, [2]string{"plain", goodTemplate})
	a, _ := fakeAgent(t, cfg, v)
	r := runAgent(t, a)
	waitReady(t, cfg, r)
	if got := fileContent(cfg.SecretsDir, "decoded"); got != "hello" {
		t.Fatalf("decoded = %q", got)
	}
	user := fileContent(cfg.SecretsDir, "db")

	v.set("kv/encoded", map[string]any{"v": "not base64!"})
	renewals := v.count(&v.leaseRenewals)
	time.Sleep(300 * time.Millisecond)
	v.set("kv/plain", map[string]any{"v": "two"})
	eventually(t, 3*time.Second, "the good template to follow Vault while another fails", func() bool {
		return fileContent(cfg.SecretsDir, "plain") == "two"
	})
	// Two and a half lease TTLs while the template keeps failing: without renewals the lease
	// would have expired.
	time.Sleep(5 * time.Second)
	if got := v.count(&v.leaseRenewals) - renewals; got < 3 {
		t.Errorf("%d lease renewals in 5 s with TTL 2 s while a template failed; want >= 3", got)
	}
	if got := fileContent(cfg.SecretsDir, "decoded"); got != "hello" {
		t.Errorf("the failing file lost its last good content: %q", got)
	}
	if got := fileContent(cfg.SecretsDir, "db"); got != user {
		t.Errorf("the database user changed from %q to %q: a new lease was issued", user, got)
	}

	v.set("kv/encoded", map[string]any{"v": "d29ybGQ="}) // "world"
	eventually(t, 3*time.Second, "the fixed value to reach its file", func() bool {
		return fileContent(cfg.SecretsDir, "decoded") == "world"
	})
	if n := v.count(&v.logins); n != 1 {
		t.Errorf("%d logins; want 1 (a template error is no reason to log in again)", n)
	}
	if n := v.count(&v.leaseReads); n != 1 {
		t.Errorf("%d database credentials issued; want 1", n)
	}
}

// A path the policy does not grant keeps the token (one login, the token checked, not thrown
// away); a token Vault revoked is replaced by one new login, and the leases that died with it
// are fetched again.
func TestForbiddenPathKeepsTokenDeadTokenLogsInOnce(t *testing.T) {
	v := newFakeVault()
	v.set("kv/plain", map[string]any{"v": "one"})
	v.set("kv/denied", map[string]any{"v": "x"})
	cfg := fakeConfig(t, 200*time.Millisecond, [2]string{"db", dbTemplate}, [2]string{"plain", goodTemplate},
		[2]string{"denied", `{{ with secret "kv/denied" }}{{ .Data.v }}{{ end }}`})
	a, _ := fakeAgent(t, cfg, v)
	r := runAgent(t, a)
	waitReady(t, cfg, r)

	v.mu.Lock()
	v.denied["kv/denied"] = true
	v.mu.Unlock()
	time.Sleep(2 * time.Second)
	if n := v.count(&v.logins); n != 1 {
		t.Fatalf("%d logins while one path was denied; want 1", n)
	}
	if n := v.count(&v.lookups); n == 0 {
		t.Error("the token was never checked after a 403")
	}
	if n := v.liveTokens(); n != 1 {
		t.Errorf("%d live tokens; want 1", n)
	}

	user := fileContent(cfg.SecretsDir, "db")
	v.revokeAllTokens()
	v.set("kv/plain", map[string]any{"v": "two"}) // a refresh now meets the dead token
	eventually(t, 5*time.Second, "a new login and new credentials after the token was revoked", func() bool {
		return fileContent(cfg.SecretsDir, "db") != user && fileContent(cfg.SecretsDir, "plain") == "two"
	})
	time.Sleep(time.Second)
	if n := v.count(&v.logins); n != 2 {
		t.Errorf("%d logins after the token was revoked once; want 2", n)
	}
	if n := v.liveTokens(); n != 1 {
		t.Errorf("%d live tokens; want 1", n)
	}
}

// runUntilAdopted runs one sidecar process until it has adopted its predecessor's state and
// rendered, then stops it. With revoke-on-shutdown off, stopping leaves the state as a killed
// process does.
func runUntilAdopted(t *testing.T, cfg *agentconfig.Config, v *fakeVault) string {
	t.Helper()
	a, logs := fakeAgent(t, cfg, v)
	r := runAgent(t, a)
	eventually(t, 5*time.Second, "the sidecar to adopt and render", func() bool {
		return strings.Contains(logs.String(), "adopted the state") && fileExists(filepath.Join(cfg.HomeDir, agentconfig.ReadyName))
	})
	time.Sleep(200 * time.Millisecond)
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	return logs.String()
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// The next agent process of a pod (the classic sidecar after the init container, a sidecar
// restarted after a crash) adopts the token and the lease: no login, no new credentials, the
// file untouched and nobody notified; the login count carries over. When the adopted lease is
// gone, one new credential replaces the file and the app is notified.
func TestNextProcessAdoptsTokenAndLeases(t *testing.T) {
	v := newFakeVault()
	v.leaseTTL = 60
	cfg := fakeConfig(t, time.Hour, [2]string{"db", dbTemplate})
	off := false
	cfg.RevokeOnShutdown = &off
	notified := filepath.Join(t.TempDir(), "notified")
	cfg.Notify = &agentconfig.Notify{Command: []string{"/bin/sh", "-c", "echo >> " + notified}}

	first, _ := fakeAgent(t, cfg, v)
	if err := first.Once(context.Background(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	user := fileContent(cfg.SecretsDir, "db")
	info, err := os.Stat(filepath.Join(cfg.SecretsDir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		logs := runUntilAdopted(t, cfg, v)
		if !strings.Contains(logs, "leased_secrets=1 pod_logins=1") {
			t.Errorf("round %d: the adoption line does not report the lease and the pod's one login:\n%s", i, logs)
		}
	}
	if n := v.count(&v.logins); n != 1 {
		t.Errorf("%d logins; want 1 (the token is adopted)", n)
	}
	if n := v.count(&v.leaseReads); n != 1 {
		t.Errorf("%d credentials issued; want 1 (the lease is adopted)", n)
	}
	after, err := os.Stat(filepath.Join(cfg.SecretsDir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	if got := fileContent(cfg.SecretsDir, "db"); got != user || !after.ModTime().Equal(info.ModTime()) {
		t.Errorf("the credentials file was rewritten (%q -> %q)", user, got)
	}
	if fileExists(notified) {
		t.Error("the app was notified although no file changed")
	}

	// The lease is revoked behind the agent's back (the token lives on).
	v.mu.Lock()
	clear(v.leases)
	v.mu.Unlock()
	runUntilAdopted(t, cfg, v)
	if n := v.count(&v.leaseReads); n != 2 {
		t.Errorf("%d credentials issued after the adopted lease was found dead; want 2", n)
	}
	if got := fileContent(cfg.SecretsDir, "db"); got == user {
		t.Error("the dead credentials stayed in the file")
	}
	if !fileExists(notified) {
		t.Error("the credentials file was replaced without notifying the app")
	}
	if n := v.count(&v.logins); n != 1 {
		t.Errorf("%d logins; want 1", n)
	}
}

// A ConfigMap template that would write the file of an annotation output (which the webhook
// cannot see at admission) fails on its own, naming both, while the annotation's file renders.
func TestConfigMapTemplateClashingWithAnnotationOutput(t *testing.T) {
	v := newFakeVault()
	v.set("kv/plain", map[string]any{"v": "from the annotation"})
	cfg := fakeConfig(t, time.Hour, [2]string{"app.conf", goodTemplate})
	cfg.Mode = agentconfig.ModeInit
	cfg.TemplatesDir = t.TempDir()
	for name, text := range map[string]string{"app.conf.tmpl": "from the ConfigMap", "other.tmpl": "fine"} {
		if err := os.WriteFile(filepath.Join(cfg.TemplatesDir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := fakeAgent(t, cfg, v)
	err := a.Once(context.Background(), time.Second)
	if err == nil || !strings.Contains(err.Error(), "app.conf.tmpl") || !strings.Contains(err.Error(), `annotation output "app.conf"`) {
		t.Fatalf("error %v; want one naming the ConfigMap key and the annotation output", err)
	}
	if got := fileContent(cfg.SecretsDir, "app.conf"); got != "from the annotation" {
		t.Errorf("app.conf = %q", got)
	}
	if got := fileContent(cfg.SecretsDir, "other"); got != "fine" {
		t.Errorf("other = %q", got)
	}
}
