package agent

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vault-injector/vault-injector/agentconfig"
	"github.com/vault-injector/vault-injector/test/vaulttest"
)

// stateTokens are every identity's Vault token as the agent keeps them in its state file.
func stateTokens(t *testing.T, homeDir string) map[string]string {
	t.Helper()
	var st agentState
	if err := json.Unmarshal([]byte(readFile(t, homeDir, stateFile)), &st); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for id, tok := range st.Tokens {
		if tok.Auth != nil {
			out[id] = tok.Auth.ClientToken
		}
	}
	return out
}

// twoIdentities is a config with identities "a" (role a: reads secret/data/a) and "b" (role b:
// reads secret/data/b), one template each.
func twoIdentities(t *testing.T, e *vaultEnv, secrets ...agentconfig.Secret) *agentconfig.Config {
	t.Helper()
	ctx := context.Background()
	for _, r := range []string{"a", "b"} {
		if err := e.vault.Role(ctx, "kubernetes", r, testNamespace, testSA, `path "secret/data/`+r+`" { capabilities = ["read"] }`, nil); err != nil {
			t.Fatal(err)
		}
		e.write(t, "secret/data/"+r, map[string]any{"data": map[string]any{"v": "value-" + r}})
	}
	want := make([]string, len(secrets))
	for i := range secrets {
		want[i], secrets[i].Identity = secrets[i].Identity, ""
	}
	cfg := e.config(t, secrets...)
	for i := range cfg.Secrets {
		cfg.Secrets[i].Identity = want[i]
	}
	def := cfg.Identities[0]
	cfg.Identities = nil
	for _, r := range []string{"a", "b"} {
		id := def
		id.Name, id.Role = r, r
		cfg.Identities = append(cfg.Identities, id)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestEachTemplateReadsThroughItsOwnIdentity: two identities log in with their own roles; each
// template's `secret` calls go through its own identity's token, so a template cannot read what
// only another identity's role allows; both tokens are revoked at shutdown.
func TestEachTemplateReadsThroughItsOwnIdentity(t *testing.T) {
	e := startVault(t, readAll)
	cfg := twoIdentities(t, e,
		agentconfig.Secret{Name: "a", Identity: "a", Template: `{{ with secret "secret/data/a" }}{{ .Data.data.v }}{{ end }}`},
		agentconfig.Secret{Name: "b", Identity: "b", Template: `{{ with secret "secret/data/b" }}{{ .Data.data.v }}{{ end }}`},
	)
	revoke := true
	cfg.RevokeOnShutdown = &revoke
	a, logs := newTestAgent(t, cfg)
	r := runAgent(t, a)
	waitReady(t, cfg, r)
	if got := readFile(t, cfg.SecretsDir, "a"); got != "value-a" {
		t.Errorf("file a = %q", got)
	}
	if got := readFile(t, cfg.SecretsDir, "b"); got != "value-b" {
		t.Errorf("file b = %q", got)
	}
	tokens := stateTokens(t, cfg.HomeDir)
	if len(tokens) != 2 || tokens["a"] == "" || tokens["b"] == "" || tokens["a"] == tokens["b"] {
		t.Fatalf("want two distinct tokens for identities a and b, got %d", len(tokens))
	}
	for id, tok := range tokens {
		s, err := e.root.Auth().Token().Lookup(tok)
		if err != nil {
			t.Fatal(err)
		}
		pol, _ := s.TokenPolicies()
		if !slices.Contains(pol, id) || slices.Contains(pol, other(id)) {
			t.Errorf("token of identity %s has policies %v: want %s's, not %s's", id, pol, id, other(id))
		}
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	for id, tok := range tokens {
		if _, err := e.root.Auth().Token().Lookup(tok); err == nil {
			t.Errorf("token of identity %s still valid after shutdown with revoke-on-shutdown", id)
		}
	}
	assertNoSecretsLogged(t, logs.String(), tokens["a"], tokens["b"])
}

// TestTemplateCannotReadThroughAnotherIdentity: identity a's template asking for b's path is
// refused by Vault (a's policy), although the pod holds b's token too.
func TestTemplateCannotReadThroughAnotherIdentity(t *testing.T) {
	e := startVault(t, readAll)
	cfg := twoIdentities(t, e,
		agentconfig.Secret{Name: "b-ok", Identity: "b", Template: `{{ with secret "secret/data/b" }}{{ .Data.data.v }}{{ end }}`},
		agentconfig.Secret{Name: "steal", Identity: "a", Template: `{{ with secret "secret/data/b" }}{{ .Data.data.v }}{{ end }}`},
	)
	cfg.Mode = agentconfig.ModeInit
	a, _ := newTestAgent(t, cfg)
	err := a.Once(context.Background(), 10*time.Second)
	if err == nil {
		t.Fatal("identity a read secret/data/b")
	}
	if want := `permission denied to read secret/data/b: the policies of role "a"`; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q, want it to contain %q", err, want)
	}
	if got := readFile(t, cfg.SecretsDir, "b-ok"); got != "value-b" {
		t.Errorf("b's own template: %q", got)
	}
}

// jwtEnv is a Vault with jwt auth at auth/jwt validating tokens of a test signer.
func jwtEnv(t *testing.T) (*vaultEnv, *vaulttest.JWTSigner) {
	t.Helper()
	e := startVault(t, readAll)
	signer, err := vaulttest.NewJWTSigner("https://kubernetes.default.svc.cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := e.vault.EnableJWTAuth(ctx, "jwt", signer.PublicKeyPEM, signer.Issuer); err != nil {
		t.Fatal(err)
	}
	if err := e.vault.JWTRole(ctx, "jwt", "app-jwt", "vault", testNamespace, testSA, readAll); err != nil {
		t.Fatal(err)
	}
	e.write(t, "secret/data/app", map[string]any{"data": map[string]any{"v": "jwt-value"}})
	return e, signer
}

func jwtConfig(t *testing.T, e *vaultEnv, tokenFile string) *agentconfig.Config {
	t.Helper()
	cfg := e.config(t, agentconfig.Secret{Name: "app", Template: `{{ with secret "secret/data/app" }}{{ .Data.data.v }}{{ end }}`})
	cfg.Identities[0].Method, cfg.Identities[0].AuthPath, cfg.Identities[0].Role = agentconfig.MethodJWT, "auth/jwt", "app-jwt"
	cfg.ServiceAccountTokenFile = tokenFile
	cfg.Mode = agentconfig.ModeInit
	return cfg
}

// TestJWTLoginNamesThePodInTokenMetadata: jwt auth logs in with the projected token, without a
// TokenReview, and the claim mappings put the pod into the token's metadata.
func TestJWTLoginNamesThePodInTokenMetadata(t *testing.T) {
	e, signer := jwtEnv(t)
	file, err := signer.MintFile(t.TempDir(), "token", "vault", testNamespace, testSA, "app-7f9c")
	if err != nil {
		t.Fatal(err)
	}
	cfg := jwtConfig(t, e, file)
	reviews := e.reviewer.Reviews()
	a, _ := newTestAgent(t, cfg)
	if err := a.Once(context.Background(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, cfg.SecretsDir, "app"); got != "jwt-value" {
		t.Errorf("file = %q", got)
	}
	if n := e.reviewer.Reviews(); n != reviews {
		t.Errorf("jwt login made %d TokenReviews", n-reviews)
	}
	s, err := e.root.Auth().Token().Lookup(stateToken(t, cfg.HomeDir))
	if err != nil {
		t.Fatal(err)
	}
	meta, _ := s.Data["meta"].(map[string]any)
	for k, want := range map[string]string{"pod_name": "app-7f9c", "namespace": testNamespace, "service_account_name": testSA} {
		if meta[k] != want {
			t.Errorf("token metadata %s = %v, want %q (all: %v)", k, meta[k], want, meta)
		}
	}
}

// TestJWTLoginRefusedByBoundClaims: a token of another service account, or with another
// audience, is refused with an error naming the role, the service account and the claims.
func TestJWTLoginRefusedByBoundClaims(t *testing.T) {
	e, signer := jwtEnv(t)
	for _, tc := range []struct{ name, audience, sa string }{
		{"other service account", "vault", "intruder"},
		{"other audience", "not-vault", testSA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file, err := signer.MintFile(t.TempDir(), "token", tc.audience, testNamespace, tc.sa, "p")
			if err != nil {
				t.Fatal(err)
			}
			a, logs := newTestAgent(t, jwtConfig(t, e, file))
			err = a.Once(context.Background(), 10*time.Second)
			if err == nil {
				t.Fatal("login succeeded")
			}
			t.Logf("agent error: %v", err)
			want := `Vault jwt role "app-jwt" at auth/jwt refused the token of service account demo/` + tc.sa + `: its bound claims or audiences do not match`
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q\nwant it to contain %q", err, want)
			}
			assertNoSecretsLogged(t, logs.String()+err.Error(), readFile(t, "", file))
		})
	}
}

func other(id string) string { return map[string]string{"a": "b", "b": "a"}[id] }
