//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vault-injector/vault-injector/test/cluster"
	"github.com/vault-injector/vault-injector/test/vaulttest"
)

// Scenario 12: Vault serves HTTPS with a private CA. The pod names a ConfigMap holding that CA;
// the injected agent verifies Vault's certificate with it, logs in (a real TokenReview through
// the API server) and renders a KV version 2 secret addressed without data/ (as
// consul-template users write it).
func TestVaultWithPrivateCA(t *testing.T) {
	v, err := vaulttest.StartTLS(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Stop() })
	c, err := v.Client()
	if err != nil {
		t.Fatal(err)
	}
	// The documented setup, run a second time (it is idempotent) against an HTTPS Vault:
	// the vault CLI trusts it through VAULT_CACERT.
	if err := vaultSetup(ctx, v); err != nil {
		t.Fatal(err)
	}
	ns := namespace(t, "s12-vault-ca", true, nil)
	for path, body := range map[string]map[string]any{
		"auth/kubernetes/role/app": {"bound_service_account_names": "app", "bound_service_account_namespaces": ns,
			"audience": "vault", "policies": "app", "ttl": "1h"},
		"secret/data/app": {"data": map[string]any{"var": "verified-by-private-ca"}},
	} {
		if _, err := c.Logical().Write(path, body); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	if err := c.Sys().PutPolicy("app", `path "secret/data/app" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	if _, err := env.c.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "app"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(v.CACert)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.c.Client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "vault-ca"}, Data: map[string]string{"ca.crt": string(caPEM)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	port := cluster.FreePort()
	pod := httpdPod("app", "app", port, map[string]string{
		"vault-injector.io/role":          "app",
		"vault-injector.io/address":       v.Addr,
		"vault-injector.io/ca-configmap":  "vault-ca",
		"vault-injector.io/template-page": fmt.Sprintf(`{{ with secret %q }}{{ .Data.data.var }}{{ end }}`, "secret/app"),
	})
	if _, err := env.c.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod(t, ns, "app", 90*time.Second, "app running", running)
	if got := get(t, "http://127.0.0.1:"+port+"/page"); got != "verified-by-private-ca" {
		t.Fatalf("served %q", got)
	}
}
