//go:build e2e

package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/vault-injector/vault-injector/test/cluster"
)

// A pod written for HashiCorp's injector, its vault.hashicorp.com/ annotations unchanged, is
// injected by a webhook run with --accept-vault-annotations (registered as the chart does with
// webhook.acceptVaultAnnotations: its matchCondition also sends that prefix) and its app reads
// the file where that injector writes it, with that injector's default bytes for an
// untemplated secret ("key: value" lines).
func TestVaultAnnotationsAccepted(t *testing.T) {
	const label = "vault-injector-test/migration"
	ns := namespace(t, "h4-migration", false, map[string]string{label: "enabled"})
	role, path := vaultApp(t, ns, "app", "from-vault")
	addr := startExtraWebhook(t, "--accept-vault-annotations")
	conditions := []admissionregistrationv1.MatchCondition{{Name: "has-injector-annotation",
		Expression: "has(object.metadata.annotations) && object.metadata.annotations.exists(k, k.startsWith('vault-injector.io/') || k.startsWith('vault.hashicorp.com/'))"}}
	mwc := webhookConfiguration("migration.vault-injector.io", "https://"+addr+"/mutate", admissionregistrationv1.Fail, conditions, map[string]string{label: "enabled"})
	if _, err := env.c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, mwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = env.c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, mwc.Name, metav1.DeleteOptions{})
	})
	port := cluster.FreePort()
	pod := httpdPod("app", "app", port, map[string]string{
		"vault.hashicorp.com/agent-inject":                   "true",
		"vault.hashicorp.com/role":                           role,
		"vault.hashicorp.com/agent-inject-secret-Config.txt": path,
	})
	// The webhook configuration takes a moment to reach the API server's admission chain.
	deadline := time.Now().Add(20 * time.Second)
	for {
		created, err := dryRunCreate(t, ns, pod)
		if err == nil && injected(created) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod not injected by the migration webhook within 20 s (err %v)", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if _, err := env.c.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod(t, ns, "app", 90*time.Second, "app running", running)
	// The injector lower-cases secret names unless preserve-secret-case is set.
	if got, want := get(t, "http://127.0.0.1:"+port+"/config.txt"), "var: from-vault\n"; got != want {
		t.Errorf("config.txt = %q, want %q", got, want)
	}

	// The same manifest after `vault-injector migrate` runs through the suite's webhook, which
	// does not accept the other prefix, and its app reads the same bytes.
	ns2 := namespace(t, "h4-migrated", true, nil)
	vaultApp(t, ns2, "app", "from-vault")
	port2 := cluster.FreePort()
	pod2 := httpdPod("app", "app", port2, map[string]string{
		"vault.hashicorp.com/agent-inject":                   "true",
		"vault.hashicorp.com/role":                           role,
		"vault.hashicorp.com/agent-inject-secret-Config.txt": path,
	})
	pod2.APIVersion, pod2.Kind = "v1", "Pod"
	in, err := yaml.Marshal(pod2)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(env.binary, "migrate", "-f", "-")
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	var migrated corev1.Pod
	if err := yaml.Unmarshal(out, &migrated); err != nil {
		t.Fatal(err)
	}
	// The role and path were made for ns; bind the role to ns2's service account too.
	v, err := env.vault.Client()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Logical().Write("auth/kubernetes/role/"+role, map[string]any{
		"bound_service_account_names": "app", "bound_service_account_namespaces": ns + "," + ns2,
		"audience": "vault", "policies": role, "ttl": "1h",
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.c.Client.CoreV1().Pods(ns2).Create(ctx, &migrated, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod(t, ns2, "app", 90*time.Second, "migrated app running", running)
	if got, want := get(t, "http://127.0.0.1:"+port2+"/config.txt"), "var: from-vault\n"; got != want {
		t.Errorf("after migrate: config.txt = %q, want %q", got, want)
	}
}

// startExtraWebhook runs a second webhook process of the product binary with the suite's
// settings plus args, on a loopback port with the suite's serving certificate; it stops with
// the test.
func startExtraWebhook(t *testing.T, args ...string) string {
	t.Helper()
	addr := "127.0.0.1:" + cluster.FreePort()
	logFile := filepath.Join(t.TempDir(), "webhook.log")
	f, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(env.binary, append([]string{"webhook", "--listen=" + addr, "--tls-cert-file=" + env.certFile, "--tls-key-file=" + env.keyFile,
		"--vault-address=" + env.vault.Addr, "--agent-image=" + agentImage, "--agent-image-pull-policy=Never",
		"--kubeconfig=" + env.c.AdminKubeconfig()}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		f.Close()
		if t.Failed() {
			t.Logf("extra webhook log:\n%s", tailFile(logFile, 30))
		}
	})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(env.c.CA.CertPEM)
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get("https://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("extra webhook not ready: %v\n%s", err, tailFile(logFile, 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
