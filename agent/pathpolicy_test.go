package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vault-injector/vault-injector/agentconfig"
)

// TestPathRulesRefuseOtherPaths: a path built at render time that the admission policy's rules
// do not allow is refused before Vault is asked, naming the rule; allowed ones render.
func TestPathRulesRefuseOtherPaths(t *testing.T) {
	for _, tc := range []struct {
		name, tmpl string
		wantErr    string // empty: renders
	}{
		{"allowed literal", `{{ with secret "secret/shop/db" }}{{ .Data.password }}{{ end }}`, ""},
		{"built at render time, allowed", `{{ with secret (printf "secret/shop/%s" "db") }}{{ .Data.password }}{{ end }}`, ""},
		{"built at render time, refused", `{{ with secret (printf "secret/%s/db" "payments") }}{{ .Data.password }}{{ end }}`,
			`policy: read of Vault path "secret/payments/db" by identity "default" is not allowed: not in rule shop-apps (allows secret/shop/*)`},
		{"write where only reads are allowed", `{{ with secret "secret/shop/db" "k=v" }}{{ end }}`,
			`policy: write of Vault path "secret/shop/db" by identity "default" is not allowed: rule shop-apps allows no write`},
		{"pki issue", `{{ with secret "pki/issue/shop" "common_name=a.shop" }}{{ end }}`,
			`policy: pki-issue of Vault path "pki/issue/shop" by identity "default" is not allowed: rule shop-apps allows no pki-issue`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newFakeVault()
			v.set("secret/shop/db", map[string]any{"password": "s3"})
			v.set("secret/payments/db", map[string]any{"password": "p4"})
			cfg := fakeConfig(t, time.Minute, [2]string{"out", tc.tmpl})
			cfg.Mode = agentconfig.ModeInit
			cfg.PathRules = []agentconfig.PathRule{{Rule: "shop-apps", Identity: agentconfig.DefaultIdentity, Read: []string{"secret/shop/*"}}}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			a, _ := fakeAgent(t, cfg, v)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := a.Once(ctx, 5*time.Second)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Once: %v", err)
				}
				b, _ := os.ReadFile(filepath.Join(cfg.SecretsDir, "out"))
				if string(b) != "s3" {
					t.Fatalf("out = %q, want s3", b)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Once error = %v, want it to contain %q", err, tc.wantErr)
			}
			var pe *agentconfig.PathError
			if !errors.As(err, &pe) {
				t.Errorf("error %v is not a *agentconfig.PathError", err)
			}
			if n := v.count(&v.reads); n != 0 {
				t.Errorf("Vault was read %d times for a refused path", n)
			}
		})
	}
}
