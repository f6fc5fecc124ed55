//go:build e2e

package e2e

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hashicorp/vault/api"

	"github.com/vault-injector/vault-injector/test/cluster"
	"github.com/vault-injector/vault-injector/test/pgtest"
)

// databaseRole mounts Vault's database secrets engine at mount for pg, with a role "app" whose
// credentials live defaultTTL (renewable up to maxTTL), and a Vault kubernetes-auth role bound
// to ns/sa that may read mount/creds/app. It returns the kubernetes-auth role's name.
func databaseRole(t *testing.T, pg *pgtest.Server, ns, sa, mount string, defaultTTL, maxTTL time.Duration) string {
	t.Helper()
	v, err := env.vault.Client()
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Sys().Mount(mount, &api.MountInput{Type: "database"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Sys().Unmount(mount) })
	for path, body := range map[string]map[string]any{
		mount + "/config/pg": {"plugin_name": "postgresql-database-plugin", "connection_url": pg.URL("{{username}}", "{{password}}"),
			"username": "postgres", "password": pgtest.Password, "allowed_roles": "app"},
		mount + "/roles/app": {"db_name": "pg", "default_ttl": defaultTTL.String(), "max_ttl": maxTTL.String(),
			"creation_statements": `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`},
	} {
		if _, err := v.Logical().Write(path, body); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	role := ns + "-db"
	if err := v.Sys().PutPolicy(role, fmt.Sprintf(`path "%s/creds/app" { capabilities = ["read"] }`, mount)); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Logical().Write("auth/kubernetes/role/"+role, map[string]any{
		"bound_service_account_names": sa, "bound_service_account_namespaces": ns,
		"audience": "vault", "policies": role, "ttl": "1h",
	}); err != nil {
		t.Fatal(err)
	}
	return role
}

// Scenario 11, service binding: a pod asks for dynamic PostgreSQL credentials. The injected
// agent renders them before the app starts, renews the lease, switches to new credentials
// before max_ttl while the old ones still work, and when the pod is deleted revokes the lease,
// so the database user is gone. The app (busybox httpd) serves the rendered directory on
// loopback so the test can read what the app sees.
func TestDynamicDatabaseCredentialsInPod(t *testing.T) {
	pg := pgtest.StartT(t)
	ns := namespace(t, "s11-database", true, nil)
	const sa, mount = "app", "db-s11"
	if _, err := env.c.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	const defaultTTL, maxTTL = 4 * time.Second, 12 * time.Second
	role := databaseRole(t, pg, ns, sa, mount, defaultTTL, maxTTL)
	port := cluster.FreePort()
	pod := httpdPod("app", sa, port, map[string]string{
		"vault-injector.io/role":            role,
		"vault-injector.io/template-db.env": fmt.Sprintf("{{ with secret %q }}username={{ .Data.username }}\npassword={{ .Data.password }}\n{{ end }}", mount+"/creds/app"),
	})
	start := time.Now()
	if _, err := env.c.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod(t, ns, "app", 90*time.Second, "app running", running)
	creds := func() (user, pass string) {
		t.Helper()
		user, pass, err := pgtest.ParseCredentials(get(t, "http://127.0.0.1:"+port+"/db.env"))
		if err != nil {
			t.Fatal(err)
		}
		return user, pass
	}
	connects := func(user, pass string) error { return pg.CanLogin(ctx, user, pass) }
	u1, p1 := creds()
	if err := connects(u1, p1); err != nil {
		t.Fatalf("the app's credentials do not connect: %v", err)
	}
	t.Logf("pod create -> app running with database credentials: %s", time.Since(start).Round(10*time.Millisecond))

	// Renewed past the default TTL, replaced before max_ttl with overlap.
	time.Sleep(time.Until(start.Add(defaultTTL + 2*time.Second)))
	if err := connects(u1, p1); err != nil {
		t.Fatalf("credentials dead after the default TTL: the lease was not renewed: %v", err)
	}
	var u2, p2 string
	deadline := start.Add(maxTTL + 5*time.Second)
	for {
		if u2, p2 = creds(); u2 != u1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("credentials not replaced before max_ttl (%s)", maxTTL)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := connects(u1, p1); err != nil {
		t.Errorf("old credentials already dead when the new ones appeared: %v", err)
	}
	if err := connects(u2, p2); err != nil {
		t.Fatalf("new credentials do not connect: %v", err)
	}
	t.Logf("credentials replaced %s after the pod was created (default_ttl %s, max_ttl %s)", time.Since(start).Round(100*time.Millisecond), defaultTTL, maxTTL)

	// Deleting the pod stops the agent, which revokes what it holds.
	if err := env.c.Client.CoreV1().Pods(ns).Delete(ctx, "app", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	gone := time.Now().Add(20 * time.Second)
	for {
		exists, err := pg.RoleExists(ctx, u2)
		if err == nil && !exists {
			break
		}
		if time.Now().After(gone) {
			t.Fatalf("database user %s still exists 20s after the pod was deleted (err %v)", u2, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
