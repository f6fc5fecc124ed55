//go:build e2e

package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vault-injector/vault-injector/patch"
	"github.com/vault-injector/vault-injector/test/cluster"
	"github.com/vault-injector/vault-injector/test/testkit"
	"github.com/vault-injector/vault-injector/test/vaulttest"
)

// kubernetesRole writes value at path and a kubernetes-auth role that may read only that path,
// bound to ns/sa (created if missing).
func kubernetesRole(t *testing.T, ns, sa, role, path, value string) {
	t.Helper()
	serviceAccount(t, ns, sa)
	v := rootClient(t)
	if _, err := v.Logical().Write(path, map[string]any{"v": value}); err != nil {
		t.Fatal(err)
	}
	if err := v.Sys().PutPolicy(role, fmt.Sprintf(`path %q { capabilities = ["read"] }`, path)); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Logical().Write("auth/kubernetes/role/"+role, map[string]any{
		"bound_service_account_names": sa, "bound_service_account_namespaces": ns,
		"audience": "vault", "policies": role, "ttl": "1h",
	}); err != nil {
		t.Fatal(err)
	}
}

func serviceAccount(t *testing.T, ns, sa string) {
	t.Helper()
	if _, err := env.c.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

func rootClient(t *testing.T) *api.Client {
	t.Helper()
	v, err := env.vault.Client()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// podVaultTokens reads the Vault tokens the pod's agent holds, per identity, from its state
// file in the pod's home volume (a memory emptyDir the kubelet mounted on this node): what
// the agent itself would use, read where it keeps it.
func podVaultTokens(t *testing.T, p *corev1.Pod) map[string]string {
	t.Helper()
	file := filepath.Join(env.c.Dir, "kubelet", "pods", string(p.UID), "volumes", "kubernetes.io~empty-dir", patch.HomeVolume, "state.json")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("the agent's state file: %v", err)
	}
	var st struct {
		Tokens map[string]struct {
			Auth *api.SecretAuth `json:"auth"`
		} `json:"tokens"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
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

// clientWithToken is a Vault client that acts with token.
func clientWithToken(t *testing.T, token string) *api.Client {
	t.Helper()
	c := rootClient(t)
	c, err := c.Clone()
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

// TestTwoIdentitiesInOnePod: a pod names two identities with different Vault roles and no
// default role; file a renders through identity a, file b through identity b. Vault itself
// then shows, with the two tokens the agent holds, that a's token cannot read b's path and
// b's cannot read a's, and both tokens are revoked when the pod is deleted.
func TestTwoIdentitiesInOnePod(t *testing.T) {
	ns := namespace(t, "i1-identities", true, nil)
	const sa = "app"
	pathA, pathB := "secret/"+ns+"/a", "secret/"+ns+"/b"
	kubernetesRole(t, ns, sa, ns+"-a", pathA, "value-a")
	kubernetesRole(t, ns, sa, ns+"-b", pathB, "value-b")
	port := cluster.FreePort()
	pod := httpdPod("app", sa, port, map[string]string{
		"vault-injector.io/identity-a-role":     ns + "-a",
		"vault-injector.io/identity-b-role":     ns + "-b",
		"vault-injector.io/template-a":          fmt.Sprintf(`{{ with secret %q }}{{ .Data.v }}{{ end }}`, pathA),
		"vault-injector.io/template-a-identity": "a",
		"vault-injector.io/secret-b":            pathB,
		"vault-injector.io/secret-b-identity":   "b",
		"vault-injector.io/revoke-on-shutdown":  "true",
	})
	if _, err := env.c.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := waitPod(t, ns, "app", 90*time.Second, "app running", running)
	if got := get(t, "http://127.0.0.1:"+port+"/a"); got != "value-a" {
		t.Errorf("file a = %q, want value-a", got)
	}
	if got := get(t, "http://127.0.0.1:"+port+"/b"); !strings.Contains(got, `"v": "value-b"`) {
		t.Errorf("file b = %q, want the JSON of %s", got, pathB)
	}

	tokens := podVaultTokens(t, p)
	if len(tokens) != 2 || tokens["a"] == "" || tokens["b"] == "" || tokens["a"] == tokens["b"] {
		t.Fatalf("the agent holds %d tokens (identities %v), want two distinct ones for a and b", len(tokens), keys(tokens))
	}
	for _, tc := range []struct{ id, own, other string }{{"a", pathA, pathB}, {"b", pathB, pathA}} {
		c := clientWithToken(t, tokens[tc.id])
		if _, err := c.Logical().Read(tc.own); err != nil {
			t.Errorf("identity %s's token cannot read its own path %s: %v", tc.id, tc.own, err)
		}
		_, err := c.Logical().Read(tc.other)
		var re *api.ResponseError
		if !errors.As(err, &re) || re.StatusCode != 403 {
			t.Errorf("identity %s's token reading %s: %v, want Vault's 403", tc.id, tc.other, err)
		}
	}

	grace := int64(5)
	if err := env.c.Client.CoreV1().Pods(ns).Delete(ctx, "app", metav1.DeleteOptions{GracePeriodSeconds: &grace}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for id, tok := range tokens {
		for {
			_, err := rootClient(t).Auth().Token().Lookup(tok)
			if err != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("identity %s's token still valid 30 s after the pod was deleted", id)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// jwtSetup runs deploy/examples/vault-jwt-setup.sh, the script docs/vault-jwt.md tells
// operators to run, with the test cluster's service-account public key: Vault validates the
// pods' tokens itself, without TokenReview and without reaching the API server.
func jwtSetup(t *testing.T, extraEnv ...string) {
	t.Helper()
	root, err := testkit.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := vaulttest.Binary()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "deploy/examples/vault-jwt-setup.sh"))
	cmd.Env = append([]string{
		"PATH=/usr/bin:/bin", "HOME=" + env.dir, "VAULT=" + bin,
		"VAULT_ADDR=" + env.vault.Addr, "VAULT_TOKEN=" + env.vault.RootToken,
		"ISSUER=" + cluster.ServiceAccountIssuer, "SA_PUBLIC_KEY_FILE=" + env.c.ServiceAccountPublicKeyFile(),
	}, extraEnv...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("deploy/examples/vault-jwt-setup.sh: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// TestJWTAuthNamesThePod: a pod with auth-type jwt logs in to Vault's jwt auth method with
// its projected token (Vault checks the cluster's signature, audience and bound claims); the
// token's metadata, as lookup-self shows it with the pod's own token, and Vault's audit log
// name the pod. A pod of another service account is refused by the role's bound claims, and
// the agent says so in its termination message.
func TestJWTAuthNamesThePod(t *testing.T) {
	ns := namespace(t, "i2-jwt", true, nil)
	const sa = "app"
	path := "secret/" + ns + "/app"
	role := ns + "-jwt"
	serviceAccount(t, ns, sa)
	serviceAccount(t, ns, "intruder")
	v := rootClient(t)
	if _, err := v.Logical().Write(path, map[string]any{"v": "jwt-value"}); err != nil {
		t.Fatal(err)
	}
	if err := v.Sys().PutPolicy(role, fmt.Sprintf(`path %q { capabilities = ["read"] }`, path)); err != nil {
		t.Fatal(err)
	}
	jwtSetup(t, "ROLE="+role, "NAMESPACE="+ns, "SERVICE_ACCOUNT="+sa, "POLICIES="+role, "AUDIENCE=vault")
	// A second role that accepts only tokens of another audience: the identity that uses it
	// logs in with a second projected token.
	jwtSetup(t, "ROLE="+role+"-pki", "NAMESPACE="+ns, "SERVICE_ACCOUNT="+sa, "POLICIES="+role, "AUDIENCE=vault-pki")
	t.Cleanup(func() { _ = v.Sys().DisableAuth("jwt") })
	auditLog := filepath.Join(t.TempDir(), "audit.log")
	if err := v.Sys().EnableAuditWithOptions("i2-file", &api.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": auditLog}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Sys().DisableAudit("i2-file") })

	ann := map[string]string{
		"vault-injector.io/role":         role,
		"vault-injector.io/auth-type":    "jwt",
		"vault-injector.io/template-app": fmt.Sprintf(`{{ with secret %q }}{{ .Data.v }}{{ end }}`, path),
		// The same secret through an identity with its own token audience.
		"vault-injector.io/identity-pki-role":           role + "-pki",
		"vault-injector.io/identity-pki-auth-type":      "jwt",
		"vault-injector.io/identity-pki-token-audience": "vault-pki",
		"vault-injector.io/template-pki":                fmt.Sprintf(`{{ with secret %q }}pki:{{ .Data.v }}{{ end }}`, path),
		"vault-injector.io/template-pki-identity":       "pki",
	}
	port := cluster.FreePort()
	created, err := env.c.Client.CoreV1().Pods(ns).Create(ctx, httpdPod("app", sa, port, ann), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := waitPod(t, ns, "app", 90*time.Second, "app running", running)
	if got := get(t, "http://127.0.0.1:"+port+"/app"); got != "jwt-value" {
		t.Errorf("file app = %q, want jwt-value", got)
	}

	if got := get(t, "http://127.0.0.1:"+port+"/pki"); got != "pki:jwt-value" {
		t.Errorf("file pki = %q, want pki:jwt-value", got)
	}

	tokens := podVaultTokens(t, p)
	for id, r := range map[string]string{"default": role, "pki": role + "-pki"} {
		self, err := clientWithToken(t, tokens[id]).Auth().Token().LookupSelf()
		if err != nil {
			t.Fatalf("lookup-self with the pod's token of identity %s: %v", id, err)
		}
		meta, _ := self.Data["meta"].(map[string]any)
		want := map[string]string{"pod_name": "app", "pod_uid": string(created.UID), "namespace": ns, "service_account_name": sa, "role": r}
		for k, w := range want {
			if meta[k] != w {
				t.Errorf("identity %s: token metadata %s = %v, want %q (all: %v)", id, k, meta[k], w, meta)
			}
		}
		if path, _ := self.Data["path"].(string); path != "auth/jwt/login" {
			t.Errorf("identity %s: token issued by %q, want auth/jwt/login", id, path)
		}
		t.Logf("identity %s: lookup-self metadata %v", id, meta)
	}
	audit, err := os.ReadFile(auditLog)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(audit), `"pod_uid":"`+string(created.UID)+`"`) || !strings.Contains(string(audit), `"pod_name":"app"`) {
		t.Errorf("Vault's audit log does not name the pod (name app, uid %s)", created.UID)
	}

	intruder := httpdPod("intruder", "intruder", cluster.FreePort(), ann)
	if _, err := env.c.Client.CoreV1().Pods(ns).Create(ctx, intruder, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	msg := terminationMessage(t, ns, "intruder")
	wantMsg := fmt.Sprintf("Vault jwt role %q at auth/jwt refused the token of service account %s/intruder: its bound claims or audiences do not match", role, ns)
	if !strings.Contains(msg, wantMsg) {
		t.Errorf("termination message %q does not contain %q", msg, wantMsg)
	}
}

// terminationMessage waits for the termination message of the pod's agent container.
func terminationMessage(t *testing.T, ns, name string) string {
	t.Helper()
	var msg string
	waitPod(t, ns, name, 60*time.Second, "termination message from our container", func(p *corev1.Pod) bool {
		for _, s := range p.Status.InitContainerStatuses {
			for _, st := range []corev1.ContainerState{s.State, s.LastTerminationState} {
				if st.Terminated != nil && st.Terminated.Message != "" {
					msg = st.Terminated.Message
					return true
				}
			}
		}
		return false
	})
	return msg
}
