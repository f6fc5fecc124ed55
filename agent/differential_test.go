package agent

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vault-injector/vault-injector/agentconfig"
	"github.com/vault-injector/vault-injector/test/vaulttest"
)

const testPEM = `-----BEGIN CERTIFICATE-----
MIIBszCCAVmgAwIBAgIUKkP
-----END CERTIFICATE-----`

// seedCorpusData writes the secrets testdata/ctmpl reads.
func seedCorpusData(t *testing.T, e *vaultEnv) {
	t.Helper()
	e.write(t, "kv/app", map[string]any{
		"user": "alice", "password": "p@ss w0rd with spaces", "port": 5432,
		"tags": "a,b,c", "b64": base64.StdEncoding.EncodeToString([]byte("hello world")),
		"padded": "  padded value \n", "pem": testPEM,
		"json": `{"name":"svc","ports":[80,443],"nested":{"ok":true}}`,
	})
	e.write(t, "secret/data/app", map[string]any{"data": map[string]any{
		"user": "bob", "api_key": "K-123", "hosts": []string{"h1", "h2", "h3"}, "enabled": true,
		"html": "<b>&amp;</b>", "unicode": "grüße ✓", "ratio": 0.25,
	}})
	e.write(t, "kv/funcs", map[string]any{
		"yaml":     "name: svc\nports: [80, 443]\nnested:\n  ok: true\nempty:\n",
		"yamllist": "- a\n- 2\n- true\n",
		"json":     `{"name":"svc","ports":[80,443],"nested":{"ok":true,"ratio":0.5}}`,
		"pairs":    "x:1;y:2;bad;z:",
	})
	e.write(t, "kv/tree", map[string]any{"app/db/user": "u", "app/db/pass": "p", "top": "t", "app/name": "n"})
	e.write(t, "secret/data/multi", map[string]any{"data": map[string]any{"z": "last", "a": "first", "m": 13}})
}

// TestDifferentialConsulTemplate renders the corpus in testdata/ctmpl with consul-template and
// with the agent, against the same Vault and data, and requires byte-identical files: templates
// people already use with consul-template or Vault Agent must work unchanged.
func TestDifferentialConsulTemplate(t *testing.T) {
	ct, err := vaulttest.ConsulTemplateBinary()
	if err != nil {
		t.Fatal(err)
	}
	e := startVault(t, `
path "kv/*" { capabilities = ["read"] }
path "secret/data/*" { capabilities = ["read"] }
path "sys/tools/hash/*" { capabilities = ["update"] }
`)
	seedCorpusData(t, e)
	corpus, err := filepath.Abs("testdata/ctmpl")
	if err != nil {
		t.Fatal(err)
	}
	templates, _ := filepath.Glob(filepath.Join(corpus, "*.ctmpl"))
	if len(templates) < 20 {
		t.Fatalf("corpus has %d templates, want at least 20", len(templates))
	}
	// The agent sees the app's variables under AppEnvPrefix (the patch renames them there).
	t.Setenv(agentconfig.AppEnvPrefix+"VI_DIFF_ENV", "from the environment")

	// consul-template, with the root token, once.
	ctOut := t.TempDir()
	var hcl strings.Builder
	fmt.Fprintf(&hcl, "vault {\n  address = %q\n  token = %q\n  renew_token = false\n  retry { enabled = false }\n}\n", e.vault.Addr, e.vault.RootToken)
	for _, tpl := range templates {
		out := filepath.Join(ctOut, strings.TrimSuffix(filepath.Base(tpl), ".ctmpl"))
		fmt.Fprintf(&hcl, "template {\n  source = %q\n  destination = %q\n}\n", tpl, out)
	}
	cfgFile := filepath.Join(t.TempDir(), "ct.hcl")
	if err := os.WriteFile(cfgFile, []byte(hcl.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ct, "-config", cfgFile, "-once", "-log-level", "warn")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir(), "VI_DIFF_ENV=from the environment"}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("consul-template: %v\n%s", err, out)
	}

	// The agent, logged in with kubernetes auth, rendering the same directory.
	cfg := e.config(t, agentconfig.Secret{Name: "placeholder", Path: "kv/app"})
	cfg.Secrets = nil
	cfg.TemplatesDir = corpus
	cfg.TemplatesIdentity = agentconfig.DefaultIdentity
	cfg.Mode = agentconfig.ModeInit
	a, _ := newTestAgent(t, cfg)
	if err := a.Once(context.Background(), 10*time.Second); err != nil {
		t.Fatal(err)
	}

	for _, tpl := range templates {
		name := strings.TrimSuffix(filepath.Base(tpl), ".ctmpl")
		t.Run(name, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join(ctOut, name))
			if err != nil {
				t.Fatalf("consul-template output: %v", err)
			}
			got, err := os.ReadFile(filepath.Join(cfg.SecretsDir, name))
			if err != nil {
				t.Fatalf("agent output: %v", err)
			}
			if len(strings.TrimSpace(string(want))) < 2 {
				t.Fatalf("consul-template rendered next to nothing (%q): the template does not exercise anything", want)
			}
			if string(got) != string(want) {
				t.Errorf("agent and consul-template differ\nagent:           %q\nconsul-template: %q", got, want)
			}
		})
	}
}
