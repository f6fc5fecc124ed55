package doctor

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/hashicorp/vault/api"

	"github.com/vault-injector/vault-injector/agentconfig"
)

func TestCheckTokenRequest(t *testing.T) {
	c := fake.NewClientset()
	var got *authenticationv1.TokenRequest
	c.PrependReactor("create", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "token" {
			return false, nil, nil
		}
		got = a.(k8stesting.CreateActionImpl).Object.(*authenticationv1.TokenRequest).DeepCopy()
		got.Status.Token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.sig"
		return true, got, nil
	})
	jwt, f := checkTokenRequest(context.Background(), fakeKube{c}, "ns", "app", "vault", "s")
	if f.Status != Pass || jwt == "" {
		t.Fatalf("got %+v", f)
	}
	if strings.Contains(f.Message, jwt) {
		t.Error("the finding quotes the token")
	}
	if len(got.Spec.Audiences) != 1 || got.Spec.Audiences[0] != "vault" || *got.Spec.ExpirationSeconds != 600 {
		t.Errorf("TokenRequest spec %+v", got.Spec)
	}

	c = fake.NewClientset()
	c.PrependReactor("create", "serviceaccounts", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errString(`serviceaccounts "app" not found`)
	})
	if _, f := checkTokenRequest(context.Background(), fakeKube{c}, "ns", "app", "vault", "s"); f.Status != Fail || !strings.Contains(f.Fix, "kubectl -n ns create serviceaccount app") {
		t.Errorf("missing service account: %+v", f)
	}
}

func TestBound(t *testing.T) {
	for _, tc := range []struct {
		list []string
		name string
		want bool
	}{
		{[]string{"app"}, "app", true},
		{[]string{"app"}, "intruder", false},
		{[]string{"*"}, "any", true},
		{[]string{"web-*"}, "web-1", true},
		{[]string{"web-*"}, "db-1", false},
		{nil, "app", false},
	} {
		if got := bound(tc.list, tc.name); got != tc.want {
			t.Errorf("bound(%v, %q) = %v", tc.list, tc.name, got)
		}
	}
}

func TestExplainLoginFailure(t *testing.T) {
	id := agentconfig.Identity{Name: "default", AuthPath: "auth/kubernetes", Role: "reader"}
	base := loginInput{ID: id, Namespace: "ns", SA: "intruder", Audience: "vault"}
	with := func(f func(*loginInput)) loginInput { in := base; f(&in); return in }
	forbidden := &api.ResponseError{StatusCode: 403, Errors: []string{"permission denied"}}
	for _, tc := range []struct {
		name             string
		err              error
		in               loginInput
		wantMsg, wantFix string
	}{
		{"unbound, Vault says so", &api.ResponseError{StatusCode: 403, Errors: []string{"service account name not authorized"}}, base,
			`role "reader" is not bound to service account ns/intruder`, "add intruder to bound_service_account_names"},
		{"namespace, Vault says so", &api.ResponseError{StatusCode: 403, Errors: []string{"namespace not authorized"}}, base,
			`role "reader" is not bound to namespace ns`, "bound_service_account_namespaces"},
		{"audience, Vault says so", &api.ResponseError{StatusCode: 400, Errors: []string{"invalid audience (aud) claim: audience claim does not match any expected audience"}}, base,
			`audience mismatch: role "reader" rejects the token's audience "vault"`, "vault read auth/kubernetes/role/reader"},
		{"audience, Vault says so, role read", &api.ResponseError{StatusCode: 400, Errors: []string{"invalid audience (aud) claim: audience claim does not match any expected audience"}},
			with(func(in *loginInput) { in.Role = &roleInfo{Audience: "not-vault"} }),
			`role "reader" requires audience "not-vault", the pod's token carries "vault"`, "set audience=vault on the role"},
		{"no role", &api.ResponseError{StatusCode: 400, Errors: []string{`invalid role name "reader"`}}, base,
			`role "reader" does not exist`, "vault write auth/kubernetes/role/reader"},
		{"no mount", &api.ResponseError{StatusCode: 404, Errors: []string{"no handler for route"}}, base,
			"no auth method is mounted at auth/kubernetes", "vault auth enable"},
		{"CA mismatch", &api.ResponseError{StatusCode: 500, Errors: []string{"x509: certificate signed by unknown authority"}}, base,
			"CA mismatch", "kubernetes_ca_cert"},
		{"bare 403, role read: unbound", forbidden, with(func(in *loginInput) {
			in.Role = &roleInfo{Names: []string{"app"}, Namespaces: []string{"ns"}, Audience: "vault"}
		}),
			`role "reader" is not bound to service account ns/intruder (bound_service_account_names: app)`, "add intruder"},
		{"bare 403, role read: namespace", forbidden, with(func(in *loginInput) {
			in.SA = "app"
			in.Role = &roleInfo{Names: []string{"app"}, Namespaces: []string{"other"}}
		}),
			"not bound to namespace ns (bound_service_account_namespaces: other)", "add ns"},
		{"bare 403, role read: audience", forbidden, with(func(in *loginInput) {
			in.SA = "app"
			in.Role = &roleInfo{Names: []string{"app"}, Namespaces: []string{"ns"}, Audience: "https://vault.example"}
		}),
			`audience mismatch: role "reader" requires audience "https://vault.example", the pod's token carries "vault"`, "--token-audience"},
		{"bare 403, our review rejects the token", forbidden, with(func(in *loginInput) { in.Review = &reviewResult{Error: "token audiences [\"vault\"] is invalid"} }),
			"the API server rejects the token", "audience"},
		{"bare 403, nothing known", forbidden, base,
			"Likely causes: (1) the role's audience", "pass --vault-token"},
		{"bare 403, our review passes", forbidden, with(func(in *loginInput) { in.Review = &reviewResult{Authenticated: true} }),
			"our own TokenReview of the same token passed, so (1) and the token itself are fine", "pass --vault-token"},
		{"unreachable", errString("dial tcp 127.0.0.1:1: connect: connection refused"), base,
			"connection refused", "--vault-addr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg, fix := explainLoginFailure(tc.err, tc.in)
			if !strings.Contains(msg, tc.wantMsg) || !strings.Contains(fix, tc.wantFix) {
				t.Errorf("got\n  msg %s\n  fix %s\nwant %q / %q", msg, fix, tc.wantMsg, tc.wantFix)
			}
		})
	}
}

// fakeVault answers the calls the Vault-side checks make: login, mount lookup,
// capabilities-self and revoke-self, and records them.
type fakeVault struct {
	mu      sync.Mutex
	calls   []string
	tokens  map[string]bool // live tokens
	caps    map[string][]string
	kv2     map[string]bool // mounts of KV version 2
	loginOK bool
}

func (v *fakeVault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v.mu.Lock()
	defer v.mu.Unlock()
	p := strings.TrimPrefix(r.URL.Path, "/v1/")
	v.calls = append(v.calls, r.Method+" "+p)
	tok := r.Header.Get("X-Vault-Token")
	reply := func(code int, body any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(body)
	}
	switch {
	case p == "auth/kubernetes/login":
		if !v.loginOK {
			reply(403, map[string]any{"errors": []string{"service account name not authorized"}})
			return
		}
		v.tokens["hvs.doctortoken0123456789"] = true
		reply(200, map[string]any{"auth": map[string]any{"client_token": "hvs.doctortoken0123456789", "policies": []string{"default", "reader"}}})
	case !v.tokens[tok]:
		reply(403, map[string]any{"errors": []string{"permission denied"}})
	case strings.HasPrefix(p, "sys/internal/ui/mounts/"):
		mount := strings.SplitN(strings.TrimPrefix(p, "sys/internal/ui/mounts/"), "/", 2)[0] + "/"
		version := "1"
		if v.kv2[mount] {
			version = "2"
		}
		reply(200, map[string]any{"data": map[string]any{"path": mount, "type": "kv", "options": map[string]any{"version": version}}})
	case p == "sys/capabilities-self":
		var body struct {
			Path  string
			Paths []string
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		data := map[string]any{}
		for _, path := range append(body.Paths, body.Path) {
			c := v.caps[path]
			if c == nil {
				c = []string{"deny"}
			}
			data[path] = c
		}
		reply(200, map[string]any{"data": data})
	case p == "auth/token/revoke-self":
		delete(v.tokens, tok)
		w.WriteHeader(204)
	default:
		reply(404, map[string]any{"errors": []string{"no handler"}})
	}
}

func newFakeVault(t *testing.T, v *fakeVault) *api.Client {
	t.Helper()
	v.tokens = map[string]bool{}
	srv := httptest.NewServer(v)
	t.Cleanup(srv.Close)
	c, err := vaultClient(VaultOptions{Addr: srv.URL}, agentconfig.Identity{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestLoginCapabilitiesRevoke(t *testing.T) {
	v := &fakeVault{loginOK: true, kv2: map[string]bool{"kv/": true}, caps: map[string][]string{
		"kv/data/app":   {"read"},
		"secret/db":     {"deny"},
		"pki/issue/web": {"create"},
	}}
	c := newFakeVault(t, v)
	id := agentconfig.Identity{Name: "default", AuthPath: "auth/kubernetes", Role: "reader"}
	token, f := checkLogin(context.Background(), c, loginInput{ID: id, JWT: "jwt", Namespace: "ns", SA: "app", Audience: "vault"}, "s")
	if f.Status != Pass || token == "" || strings.Contains(f.Message, token) {
		t.Fatalf("login: %+v", f)
	}
	c.SetToken(token)
	fs := checkCapabilities(context.Background(), c, "reader", []vaultUse{{"kv/app", "read"}, {"secret/db", "read"}, {"pki/issue/web", "update"}}, "s")
	want := []struct {
		status Status
		msg    string
	}{
		{Pass, "kv/data/app: read allowed"},
		{Fail, `secret/db: the policies of role "reader" do not allow read`},
		{Pass, "pki/issue/web: update allowed"},
	}
	for i, w := range want {
		if fs[i].Status != w.status || !strings.Contains(fs[i].Message, w.msg) {
			t.Errorf("capability %d: %+v, want %s %q", i, fs[i], w.status, w.msg)
		}
	}
	if !strings.Contains(fs[1].Fix, `path "secret/db" { capabilities = ["read"] }`) {
		t.Errorf("fix %q", fs[1].Fix)
	}
	if f := checkRevoke(context.Background(), c, "s"); f.Status != Pass {
		t.Errorf("revoke: %+v", f)
	}
	if len(v.tokens) != 0 {
		t.Errorf("tokens left behind: %d", len(v.tokens))
	}
	if f := checkRevoke(context.Background(), c, "s"); f.Status != Warn {
		t.Errorf("second revoke should fail: %+v", f)
	}
}

func TestLoginRefused(t *testing.T) {
	c := newFakeVault(t, &fakeVault{})
	id := agentconfig.Identity{Name: "default", AuthPath: "auth/kubernetes", Role: "reader"}
	token, f := checkLogin(context.Background(), c, loginInput{ID: id, JWT: "jwt", Namespace: "ns", SA: "intruder", Audience: "vault"}, "s")
	if token != "" || f.Status != Fail || !strings.Contains(f.Message, `role "reader" is not bound to service account ns/intruder`) || f.Fix == "" {
		t.Errorf("got %+v", f)
	}
}
