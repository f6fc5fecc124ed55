package policy

import (
	"os"
	"strings"
	"testing"

	"github.com/vault-injector/vault-injector/agentconfig"
)

func examplePolicy(t *testing.T) *Policy {
	t.Helper()
	b, err := os.ReadFile("testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(b)
	if err != nil {
		t.Fatalf("Parse(example): %v", err)
	}
	return p
}

// cfgOpt changes the one-identity config podConfig builds.
type cfgOpt func(*agentconfig.Config)

func podConfig(opts ...cfgOpt) *agentconfig.Config {
	c := &agentconfig.Config{
		Version: agentconfig.Version, Mode: agentconfig.ModeSidecar,
		Identities: []agentconfig.Identity{{Name: agentconfig.DefaultIdentity, Method: "kubernetes", AuthPath: "auth/kubernetes",
			Role: "shop-web", Address: "https://vault.example.com:8200"}},
		Secrets: []agentconfig.Secret{{Name: "db", Identity: agentconfig.DefaultIdentity, Path: "secret/shop/db", File: "db"}},
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

func role(r string) cfgOpt    { return func(c *agentconfig.Config) { c.Identities[0].Role = r } }
func address(a string) cfgOpt { return func(c *agentconfig.Config) { c.Identities[0].Address = a } }
func tmpl(s string) cfgOpt {
	return func(c *agentconfig.Config) { c.Secrets[0].Template, c.Secrets[0].Path = s, "" }
}
func secretPath(p string) cfgOpt { return func(c *agentconfig.Config) { c.Secrets[0].Path = p } }

// envVar adds an env variable read through the default identity.
func envVar(v agentconfig.EnvVar) cfgOpt {
	return func(c *agentconfig.Config) {
		v.Identity = agentconfig.DefaultIdentity
		if c.Env == nil {
			c.Env = &agentconfig.Env{File: agentconfig.EnvFile}
		}
		c.Env.Vars = append(c.Env.Vars, v)
	}
}

func TestEvaluate(t *testing.T) {
	p := examplePolicy(t)
	for _, tc := range []struct {
		name, ns, sa string
		labels       map[string]string
		cfg          *agentconfig.Config
		wantErr      string // empty: allowed
		wantRule     string // the rule that allows it
	}{
		{name: "allowed", ns: "shop", sa: "web", cfg: podConfig(), wantRule: "shop-apps"},
		{name: "glob namespace and service account", ns: "shop-eu", sa: "api-v2", cfg: podConfig(), wantRule: "shop-apps"},
		{name: "role outside the rule", ns: "shop", sa: "web", cfg: podConfig(role("payments-admin")),
			wantErr: "policy: namespace shop, service account web: role payments-admin not in rule shop-apps (allows shop-*)"},
		{name: "no rule matches", ns: "payments", sa: "web", cfg: podConfig(),
			wantErr: "policy: namespace payments, service account web: no policy rule matches this namespace and service account"},
		{name: "default service account", ns: "shop", sa: "", cfg: podConfig(),
			wantErr: "policy: namespace shop, service account default: no policy rule matches this namespace and service account"},
		{name: "every reason of the matching rule", ns: "shop", sa: "batch", cfg: podConfig(role("payments")),
			wantErr: "policy: namespace shop, service account batch: role payments not in rule shop-batch (allows shop-batch), secret db: read of secret/shop/db not in rule shop-batch (allows secret/shop/batch/*)"},
		{name: "two rules match, each refuses", ns: "shop", sa: "web", labels: map[string]string{"team": "platform"}, cfg: podConfig(address("https://evil")),
			wantErr: "policy: namespace shop, service account web: address https://evil not in rule shop-apps (allows https://vault.example.com:8200); address https://evil not in rule platform (allows https://vault.example.com:8200, https://vault-*.internal:8200)"},
		{name: "address", ns: "shop", sa: "web", cfg: podConfig(address("https://evil.example.com")),
			wantErr: "address https://evil.example.com not in rule shop-apps (allows https://vault.example.com:8200)"},
		{name: "path", ns: "shop", sa: "web", cfg: podConfig(secretPath("secret/payments/db")),
			wantErr: "secret db: read of secret/payments/db not in rule shop-apps (allows secret/shop/**, secret/data/shop/**)"},
		{name: "dot-dot path", ns: "shop", sa: "web", cfg: podConfig(secretPath("secret/shop/../payments/db")),
			wantErr: `secret db: path secret/shop/../payments/db: the path has an empty, "." or ".." segment`},
		{name: "overlong path", ns: "shop", sa: "web", cfg: podConfig(secretPath("secret/shop/" + strings.Repeat("a", 1100))),
			wantErr: "characters long: expected at most 1024"},
		{name: "env variable allowed", ns: "shop", sa: "web", cfg: podConfig(envVar(agentconfig.EnvVar{Name: "PW", Path: "secret/shop/db", Key: "pw"})), wantRule: "shop-apps"},
		{name: "env variable path", ns: "shop", sa: "web", cfg: podConfig(envVar(agentconfig.EnvVar{Name: "PW", Path: "secret/payments/db", Key: "pw"})),
			wantErr: "env PW: read of secret/payments/db not in rule shop-apps (allows secret/shop/**, secret/data/shop/**)"},
		{name: "env variable template", ns: "shop", sa: "web", cfg: podConfig(envVar(agentconfig.EnvVar{Name: "PW", Template: `{{ with secret "secret/payments/db" }}{{ .Data.pw }}{{ end }}`})),
			wantErr: "env PW: read of secret/payments/db not in rule shop-apps"},
		{name: "template write", ns: "shop", sa: "web", cfg: podConfig(tmpl(`{{ with secret "transit/encrypt/shop" "plaintext=YQ==" }}{{ end }}`)),
			wantErr: "secret db: write of transit/encrypt/shop not in rule shop-apps (allows none)"},
		{name: "template pki issue allowed", ns: "shop", sa: "web", cfg: podConfig(tmpl(`{{ with secret "pki/issue/shop" "common_name=a.shop" }}{{ .Data.certificate }}{{ end }}`)), wantRule: "shop-apps"},
		{name: "template read", ns: "shop", sa: "web", cfg: podConfig(tmpl(`{{ with secret "secret/other" }}{{ .Data.x }}{{ end }}`)),
			wantErr: "secret db: read of secret/other not in rule shop-apps"},
		{name: "tls-skip-verify", ns: "shop", sa: "web", cfg: podConfig(func(c *agentconfig.Config) { c.Identities[0].TLSSkipVerify = true }),
			wantErr: "tls-skip-verify not allowed by rule shop-apps"},
		{name: "notify-command", ns: "shop", sa: "web", cfg: podConfig(func(c *agentconfig.Config) { c.Notify = &agentconfig.Notify{Command: []string{"kill"}} }),
			wantErr: "notify-command not allowed by rule shop-apps"},
		{name: "vault namespace", ns: "shop", sa: "web", cfg: podConfig(func(c *agentconfig.Config) { c.Identities[0].Namespace = "team-a" }),
			wantErr: `Vault namespace team-a not in rule shop-apps (allows "")`},
		{name: "auth type", ns: "shop", sa: "web", cfg: podConfig(func(c *agentconfig.Config) { c.Identities[0].Method = "jwt" }),
			wantErr: "auth type jwt not in rule shop-apps (allows kubernetes)"},
		{name: "selector matches", ns: "infra", sa: "x", labels: map[string]string{"team": "platform"},
			cfg: podConfig(func(c *agentconfig.Config) {
				c.Identities[0].Namespace = "platform/a"
				c.Identities[0].TLSSkipVerify = true
			}), wantRule: "platform"},
		{name: "selector without labels", ns: "infra", sa: "x", cfg: podConfig(),
			wantErr: "no policy rule matches"},
		{name: "second identity refused", ns: "shop", sa: "web", cfg: podConfig(func(c *agentconfig.Config) {
			c.Identities = append(c.Identities, agentconfig.Identity{Name: "pki", Method: "kubernetes", AuthPath: "auth/kubernetes", Role: "pki-admin", Address: "https://vault.example.com:8200"})
		}), wantErr: "policy: namespace shop, service account web, identity pki: role pki-admin not in rule shop-apps (allows shop-*)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := p.Evaluate(Request{Namespace: tc.ns, ServiceAccount: tc.sa, NamespaceLabels: tc.labels, Config: tc.cfg})
			err := d.Err()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("denied: %v", err)
				}
				if got := d.Identities[0].AllowedBy[0]; got != tc.wantRule {
					t.Errorf("allowed by %q, want %q", got, tc.wantRule)
				}
				if len(d.PathRules) == 0 || d.PathRules[0].Rule != tc.wantRule {
					t.Errorf("path rules %+v, want the globs of %s", d.PathRules, tc.wantRule)
				}
				return
			}
			if err == nil {
				t.Fatalf("allowed, want denial %q", tc.wantErr)
			}
			if strings.HasPrefix(tc.wantErr, "policy: ") && err.Error() != tc.wantErr {
				t.Fatalf("denial\n got %q\nwant %q", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("denial %q does not contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestOutcomes(t *testing.T) {
	p := examplePolicy(t)
	for _, tc := range []struct {
		ns, sa string
		cfg    *agentconfig.Config
		want   []RuleOutcome
	}{
		{"shop", "web", podConfig(), []RuleOutcome{{"shop-apps", OutcomeAllowed}}},
		{"nowhere", "web", podConfig(), []RuleOutcome{{"", OutcomeNoMatch}}},
		{"shop", "batch", podConfig(role("x")), []RuleOutcome{{"shop-batch", OutcomeDenied}}},
	} {
		got := p.Evaluate(Request{Namespace: tc.ns, ServiceAccount: tc.sa, Config: tc.cfg}).Outcomes()
		if len(got) != len(tc.want) {
			t.Fatalf("%s/%s: outcomes %v, want %v", tc.ns, tc.sa, got, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s/%s: outcomes %v, want %v", tc.ns, tc.sa, got, tc.want)
			}
		}
	}
}

func TestParseErrors(t *testing.T) {
	const head = "apiVersion: vault-injector.io/v1alpha1\nkind: InjectionPolicy\n"
	const allow = "  allow: {roles: [a], authPaths: [auth/kubernetes], addresses: [https://v], paths: {read: [secret/*]}}\n"
	for _, tc := range []struct{ name, doc, want string }{
		{"empty", "", "policy is empty"},
		{"not yaml", "{", "decode policy"},
		{"wrong kind", "apiVersion: v1\nkind: ConfigMap\nrules: []\n", `policy has apiVersion "v1", kind "ConfigMap": expected apiVersion vault-injector.io/v1alpha1, kind InjectionPolicy`},
		{"no rules", head + "rules: []\n", "policy has no rules"},
		{"unknown field", head + "rules:\n- name: a\n  match: {namespace: [x]}\n" + allow, `unknown field "namespace"`},
		{"bad name", head + "rules:\n- name: A B\n  match: {namespaces: [x]}\n" + allow, `rule 1: name "A B"`},
		{"duplicate", head + "rules:\n- name: a\n  match: {namespaces: [x]}\n" + allow + "- name: a\n  match: {namespaces: [x]}\n" + allow, "rule a is defined twice"},
		{"no match", head + "rules:\n- name: a\n  match: {}\n" + allow, "rule a: match has neither namespaces nor namespaceSelector"},
		{"no roles", head + "rules:\n- name: a\n  match: {namespaces: [x]}\n  allow: {authPaths: [a], addresses: [b], paths: {read: [c]}}\n", "rule a: allow.roles is empty"},
		{"no paths", head + "rules:\n- name: a\n  match: {namespaces: [x]}\n  allow: {roles: [r], authPaths: [a], addresses: [b]}\n", "rule a: allow.paths has no read, write or pkiIssue globs"},
		{"empty glob", head + "rules:\n- name: a\n  match: {namespaces: [\"\"]}\n" + allow, `rule a: match.namespaces: "": empty pattern`},
		{"bad selector", head + "rules:\n- name: a\n  match: {namespaceSelector: {matchExpressions: [{key: k, operator: Bogus}]}}\n" + allow, "rule a: match.namespaceSelector"},
		{"too large", head + strings.Repeat("#", MaxBytes), "policy is"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// FuzzParse: no input panics the parser, and whatever it accepts can decide a pod.
func FuzzParse(f *testing.F) {
	b, _ := os.ReadFile("testdata/example.yaml")
	f.Add(b)
	f.Add([]byte("apiVersion: vault-injector.io/v1alpha1\nkind: InjectionPolicy\nrules: [{name: a, match: {namespaces: ['*']}, allow: {roles: ['*'], authPaths: ['*'], addresses: ['*'], paths: {read: ['**']}}}]"))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		d := p.Evaluate(Request{Namespace: "shop", ServiceAccount: "web", NamespaceLabels: map[string]string{"team": "platform"}, Config: podConfig()})
		if err := d.Err(); err != nil && !strings.HasPrefix(err.Error(), "policy: ") {
			t.Fatalf("denial without the policy prefix: %v", err)
		}
		_ = d.Explain()
	})
}
