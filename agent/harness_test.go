package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/vault-injector/vault-injector/agentconfig"
	"github.com/vault-injector/vault-injector/test/vaulttest"
)

// vaultEnv is a real dev-mode Vault with kubernetes auth (backed by a TokenReview stand-in) and
// a service-account token the role "app" accepts.
type vaultEnv struct {
	vault     *vaulttest.Server
	reviewer  *vaulttest.TokenReviewer
	root      *api.Client
	tokenFile string
	dir       string
}

const (
	testNamespace = "demo"
	testSA        = "app"
	testRole      = "app"
)

// startVault starts Vault for one test. policy is the HCL of the role's policy.
func startVault(t *testing.T, policy string) *vaultEnv {
	t.Helper()
	e := &vaultEnv{vault: vaulttest.StartT(t), reviewer: vaulttest.StartTokenReviewer(), dir: t.TempDir()}
	t.Cleanup(e.reviewer.Close)
	e.setup(t, policy)
	f, err := e.reviewer.MintFile(e.dir, testNamespace, testSA)
	if err != nil {
		t.Fatal(err)
	}
	e.tokenFile = f
	return e
}

// setup configures a fresh Vault: kubernetes auth, the role, and a KV v1 mount at kv/ (dev
// mode already has KV v2 at secret/).
func (e *vaultEnv) setup(t *testing.T, policy string) {
	t.Helper()
	ctx := context.Background()
	root, err := e.vault.Client()
	if err != nil {
		t.Fatal(err)
	}
	e.root = root
	if err := e.vault.EnableKubernetesAuth(ctx, e.reviewer, "kubernetes"); err != nil {
		t.Fatal(err)
	}
	if err := e.vault.Role(ctx, "kubernetes", testRole, testNamespace, testSA, policy, nil); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().MountWithContext(ctx, "kv", &api.MountInput{Type: "kv", Options: map[string]string{"version": "1"}}); err != nil {
		t.Fatal(err)
	}
}

func (e *vaultEnv) write(t *testing.T, path string, data map[string]any) {
	t.Helper()
	if _, err := e.root.Logical().Write(path, data); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

// config is a sidecar config for the default identity writing into a fresh directory.
func (e *vaultEnv) config(t *testing.T, secrets ...agentconfig.Secret) *agentconfig.Config {
	t.Helper()
	for i := range secrets {
		if secrets[i].Identity == "" {
			secrets[i].Identity = agentconfig.DefaultIdentity
		}
		if secrets[i].Perms == 0 {
			secrets[i].Perms = 0o644
		}
		if secrets[i].File == "" {
			secrets[i].File = secrets[i].Name
		}
	}
	c := &agentconfig.Config{
		Version: agentconfig.Version,
		Mode:    agentconfig.ModeSidecar,
		Identities: []agentconfig.Identity{{
			Name: agentconfig.DefaultIdentity, Method: "kubernetes", AuthPath: "auth/kubernetes",
			Role: testRole, Address: e.vault.Addr,
		}},
		Secrets:                 secrets,
		SecretsDir:              t.TempDir(),
		HomeDir:                 t.TempDir(),
		ServiceAccountTokenFile: e.tokenFile,
		RefreshInterval:         agentconfig.Duration(time.Minute),
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// logBuffer collects the agent's log lines for assertions; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// newTestAgent builds an agent whose log goes to the returned buffer (and to the test log on
// failure).
func newTestAgent(t *testing.T, cfg *agentconfig.Config) (*Agent, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	a, err := New(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", logs)
		}
	})
	return a, logs
}

// running is an agent in sidecar mode in the background.
type running struct {
	cancel context.CancelFunc
	done   chan error
}

func runAgent(t *testing.T, a *Agent) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels the agent (as SIGTERM does) and waits for its shutdown work.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
		}
		return err
	case <-time.After(15 * time.Second):
		t.Fatal("agent did not stop within 15s of cancellation")
		return nil
	}
}

// eventually polls cond every 50ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readFile(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitReady waits for the ready marker of a running agent.
func waitReady(t *testing.T, cfg *agentconfig.Config, r *running) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(cfg.HomeDir, agentconfig.ReadyName)); err == nil {
			return
		}
		select {
		case err := <-r.done:
			t.Fatalf("agent stopped before it was ready: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("agent not ready after 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// assertNoSecretsLogged fails if a token or a credential appears in the log.
func assertNoSecretsLogged(t *testing.T, logs string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(logs, s) {
			t.Errorf("the log contains a secret value (%d characters)", len(s))
		}
	}
}

// stateToken is the default identity's Vault token as the agent keeps it in its state file.
func stateToken(t *testing.T, homeDir string) string {
	t.Helper()
	var st agentState
	if err := json.Unmarshal([]byte(readFile(t, homeDir, stateFile)), &st); err != nil {
		t.Fatal(err)
	}
	tok, ok := st.Tokens[agentconfig.DefaultIdentity]
	if !ok || tok.Auth == nil {
		t.Fatal("no token in the agent state")
	}
	return tok.Auth.ClientToken
}
