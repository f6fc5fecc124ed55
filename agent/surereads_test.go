package agent

import (
	"slices"
	"testing"
	"time"

	"github.com/vault-injector/vault-injector/agentconfig"
)

func TestSureReads(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       []string
	}{
		{"default template", defaultTemplate(`kv/"odd"`), []string{`kv/"odd"`}},
		{"with and action", `{{ with secret "kv/a" }}{{ .Data.x }}{{ end }}{{ secret "kv/b" }}`, []string{"kv/a", "kv/b"}},
		{"variable", `{{ $s := secret "kv/a" }}{{ $s.Data.x }}`, []string{"kv/a"}},
		{"if and range pipelines", `{{ if secret "kv/a" }}y{{ end }}{{ range secret "kv/b" }}{{ end }}`, []string{"kv/a", "kv/b"}},
		{"pipe after", `{{ secret "kv/a" | toJSON }}`, []string{"kv/a"}},
		{"in a branch body", `{{ with secret "kv/a" }}{{ with secret "kv/b" }}{{ end }}{{ end }}`, []string{"kv/a"}},
		{"in an else", `{{ if .x }}{{ else }}{{ secret "kv/b" }}{{ end }}`, nil},
		{"write arguments", `{{ with secret "pki/issue/web" "common_name=a" }}{{ end }}`, nil},
		{"built path", `{{ with secret (printf "kv/%s" "a") }}{{ end }}`, nil},
		{"inside and", `{{ if and .x (secret "kv/a") }}{{ end }}`, nil},
		{"defined template", `{{ define "t" }}{{ secret "kv/a" }}{{ end }}{{ template "t" }}`, nil},
		{"does not parse", `{{ with secret "kv/a" }}`, nil},
		{"no secret", `plain {{ "text" }}`, nil},
	} {
		if got := sureReads(tc.name, tc.text); !slices.Equal(got, tc.want) {
			t.Errorf("%s: sureReads = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// A template reading several secrets before any branch has them read at once on the first
// pass, each once, and renders as before.
func TestPrefetchReadsATemplatesSecretsConcurrently(t *testing.T) {
	v := abcVault()
	cfg := fakeConfig(t, time.Hour)
	cfg.Secrets = append(cfg.Secrets, agentconfig.Secret{Name: "app.env", Identity: agentconfig.DefaultIdentity, File: "app.env", Perms: 0o600,
		Template: `{{ with secret "kv/a" }}A={{ .Data.v }}{{ end }}
{{ with secret "kv/b" }}B={{ .Data.v }}{{ end }}
{{ with secret "kv/c" }}C={{ .Data.v }}{{ end }}
`})
	onceWithBarrier(t, cfg, v)
	if got := fileContent(cfg.SecretsDir, "app.env"); got != "A=kv/a\nB=kv/b\nC=kv/c\n" {
		t.Errorf("app.env = %q", got)
	}
}
