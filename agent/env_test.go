package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vault-injector/vault-injector/agentconfig"
	"github.com/vault-injector/vault-injector/internal/envfile"
)

func envConfig(t *testing.T, versioned bool, vars ...agentconfig.EnvVar) *agentconfig.Config {
	t.Helper()
	cfg := fakeConfig(t, time.Hour)
	for i := range vars {
		vars[i].Identity = agentconfig.DefaultIdentity
	}
	cfg.Env = &agentconfig.Env{File: filepath.Join(t.TempDir(), "app.env"), Vars: vars, Versioned: versioned}
	return cfg
}

func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	vars, err := envfile.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, v := range vars {
		out[v.Name] = v.Value
	}
	return out
}

// Two variables from one dynamic secret come from one lease; KV v2 data is unwrapped; a
// template works like a file's.
func TestEnvFileOneLeaseForOneSecret(t *testing.T) {
	v := newFakeVault()
	v.set("secret/data/app", map[string]any{"data": map[string]any{"api-key": "k1", "port": 8080.0}, "metadata": map[string]any{"version": 1.0}})
	cfg := envConfig(t, false,
		agentconfig.EnvVar{Name: "DB_USER", Path: "database/creds/app", Key: "username"},
		agentconfig.EnvVar{Name: "DB_PASSWORD", Path: "database/creds/app", Key: "password"},
		agentconfig.EnvVar{Name: "API_KEY", Path: "secret/data/app", Key: "api-key"},
		agentconfig.EnvVar{Name: "PORT", Path: "secret/data/app", Key: "port"},
		agentconfig.EnvVar{Name: "URL", Template: `{{ with secret "secret/data/app" }}https://x/{{ .Data.data.port }}{{ end }}`},
	)
	a, _ := fakeAgent(t, cfg, v)
	if err := a.Once(context.Background(), time.Second); err != nil {
		t.Fatal(err)
	}
	got := readEnvFile(t, cfg.Env.File)
	if !strings.HasPrefix(got["DB_USER"], "v-user-") {
		t.Errorf("DB_USER = %q, want the dynamic user", got["DB_USER"])
	}
	want := map[string]string{"DB_PASSWORD": "p", "API_KEY": "k1", "PORT": "8080", "URL": "https://x/8080"}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %q, want %q", k, got[k], w)
		}
	}
	if v.leaseReads != 1 {
		t.Errorf("database credentials read %d times, want 1 (one lease for username and password)", v.leaseReads)
	}
}

// A key the secret lacks, or a value the kubelet cannot read back, fails with an error naming
// the variable (and the path and key), and no file is written: never a mangled value.
func TestEnvFileRefusesWhatItCannotCarry(t *testing.T) {
	cases := []struct {
		name string
		data map[string]any
		key  string
		want string
	}{
		{"missing key", map[string]any{"api-key": "x", "other": "y"}, "api-kee", `env K: secret kv/app has no key "api-kee" (its keys: "api-key", "other")`},
		{"quote", map[string]any{"v": "it's"}, "v", "environment variable K cannot be passed through the env file: its value contains a single quote"},
		{"empty", map[string]any{"v": ""}, "v", "its value is empty"},
		{"null", map[string]any{"v": nil}, "v", `key "v" of secret kv/app is null`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := newFakeVault()
			v.set("kv/app", c.data)
			cfg := envConfig(t, false, agentconfig.EnvVar{Name: "K", Path: "kv/app", Key: c.key})
			a, _ := fakeAgent(t, cfg, v)
			err := a.Once(context.Background(), time.Second)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Once = %v, want an error containing %q", err, c.want)
			}
			if strings.Contains(err.Error(), "it's") {
				t.Errorf("the error shows the value: %v", err)
			}
			if _, err := os.Stat(cfg.Env.File); !os.IsNotExist(err) {
				t.Errorf("env file written despite the error (stat: %v)", err)
			}
		})
	}
}

// The version changes with the values and only then, also across agent processes, so that a
// restarted agent does not restart the app.
func TestEnvVersionFollowsValues(t *testing.T) {
	v := newFakeVault()
	v.set("kv/app", map[string]any{"k": "one"})
	cfg := envConfig(t, true, agentconfig.EnvVar{Name: "K", Path: "kv/app", Key: "k"})
	run := func() string {
		t.Helper()
		a, _ := fakeAgent(t, cfg, v)
		a.now = func() time.Time { return time.Now().Add(time.Duration(len(t.Name())) * time.Hour) }
		if err := a.Once(context.Background(), time.Second); err != nil {
			t.Fatal(err)
		}
		return readEnvFile(t, cfg.Env.File)[agentconfig.EnvVersionVar]
	}
	v1 := run()
	if v1 == "" {
		t.Fatal("no version in the env file")
	}
	time.Sleep(2 * time.Millisecond)
	if v2 := run(); v2 != v1 {
		t.Errorf("same values, new process: version %s became %s", v1, v2)
	}
	v.set("kv/app", map[string]any{"k": "two"})
	time.Sleep(2 * time.Millisecond)
	if v3 := run(); v3 == v1 {
		t.Errorf("values changed, version stayed %s", v1)
	}
}

// The ready probe prints why the agent is not ready, for the kubelet's Event.
func TestReadyProbeSaysWhy(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ready")
	var out strings.Builder
	if code := ready([]string{"--file=" + marker}, &out); code != 1 || !strings.Contains(out.String(), "files not rendered yet") {
		t.Fatalf("ready = %d, %q", code, out.String())
	}
	if err := os.WriteFile(filepath.Join(dir, lastErrorFile), []byte("2026-01-01T00:00:00Z env K: secret kv/app has no key \"x\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := ready([]string{"--file=" + marker}, &out); code != 1 || !strings.Contains(out.String(), `not ready: 2026-01-01T00:00:00Z env K: secret kv/app has no key "x"`) {
		t.Fatalf("ready = %d, %q", code, out.String())
	}
	if err := os.WriteFile(marker, []byte("ok\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code := ready([]string{"--file=" + marker}, &out); code != 0 {
		t.Fatalf("ready with the marker = %d", code)
	}
}

func TestCopyBinary(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "vault-injector")
	if err := copyBinary(dst); err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	a, _ := os.Stat(self)
	b, err := os.Stat(dst)
	if err != nil || b.Size() != a.Size() || b.Mode().Perm() != 0o755 {
		t.Fatalf("copy: %v size %d (want %d) mode %v", err, b.Size(), a.Size(), b.Mode())
	}
	if err := copyBinary(dst); err != nil {
		t.Fatalf("second copy: %v", err)
	}
}
