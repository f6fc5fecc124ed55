//go:build e2e

// Package e2e runs vault-injector against a real one-node cluster (test/cluster): a real API
// server calls the webhook over TLS, a real kubelet runs the injected pods from locally built
// images, and the agent logs in to a real Vault through a real TokenReview.
package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hashicorp/vault/api"

	"github.com/vault-injector/vault-injector/internal/procstat"
	"github.com/vault-injector/vault-injector/test/cluster"
	"github.com/vault-injector/vault-injector/test/testkit"
	"github.com/vault-injector/vault-injector/test/vaulttest"
)

const (
	agentImage = testkit.AgentImage
	appImage   = testkit.AppImage
)

// env is the stack shared by every test of the package.
var env struct {
	c            *cluster.Cluster
	vault        *vaulttest.Server
	webhook      *exec.Cmd
	webhookAddr  string
	webhookDone  chan struct{}
	webhookLog   string
	binary       string
	dir          string
	certFile     string
	keyFile      string
	startupTimes map[string]time.Duration
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) (code int) {
	ctx := context.Background()
	start := time.Now()
	dir, err := os.MkdirTemp("", "vault-injector-e2e-build-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	env.dir = dir
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "e2e setup:", err)
		return 1
	}
	binary, images, err := testkit.BuildImages(dir)
	if err != nil {
		return fail(err)
	}
	env.binary = binary
	// Ctrl-C or SIGTERM must still tear the node down.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		if _, ok := <-sigs; ok {
			fmt.Fprintln(os.Stderr, "interrupted: tearing the cluster down")
			teardown()
			os.Exit(130)
		}
	}()
	c, err := cluster.Start(ctx, cluster.Options{Images: images, Log: os.Stderr})
	if err != nil {
		return fail(err)
	}
	env.c = c
	defer teardown()
	if env.vault, err = vaulttest.Start(ctx, dir); err != nil {
		return fail(err)
	}
	if err := configureVault(ctx); err != nil {
		return fail(err)
	}
	if err := startWebhook(ctx); err != nil {
		return fail(err)
	}
	if err := registerWebhook(ctx, "vault-injector.io", admissionregistrationv1.Fail); err != nil {
		return fail(err)
	}
	fmt.Fprintf(os.Stderr, "[e2e] stack ready in %s (node Ready after %s)\n", time.Since(start).Round(100*time.Millisecond), c.ReadyAfter.Round(10*time.Millisecond))
	code = m.Run()
	rss := c.RSS()
	var parts []string
	for k, v := range rss {
		parts = append(parts, fmt.Sprintf("%s %d MiB", k, v/1024))
	}
	fmt.Fprintf(os.Stderr, "[e2e] stack memory (RSS): %s; vault %d MiB\n", strings.Join(parts, ", "), rssKiB(env.vault.PID())/1024)
	if code != 0 {
		c.DumpLogs(os.Stderr)
		fmt.Fprintf(os.Stderr, "===== webhook =====\n%s\n", tailFile(env.webhookLog, 40))
		fmt.Fprintf(os.Stderr, "===== vault =====\n%s\n", lastLines(env.vault.Logs(), 40))
	}
	return code
}

func teardown() {
	if env.webhook != nil && env.webhook.Process != nil {
		_ = env.webhook.Process.Signal(syscall.SIGTERM)
		select {
		case <-env.webhookDone:
		case <-time.After(5 * time.Second):
			_ = env.webhook.Process.Kill()
		}
	}
	if env.c != nil {
		env.c.Stop()
	}
	if env.vault != nil {
		env.vault.Stop()
	}
}

// configureVault mounts KV v1 at secret/ (the seed scenario's layout) and sets up kubernetes
// auth with deploy/examples/vault-setup.sh, the script docs/vault-setup.md tells operators to
// run: a reviewer ServiceAccount bound to system:auth-delegator, its long-lived token Secret,
// the API server's loopback address and CA. Every login in the suite is then a real TokenReview
// made with that reviewer token, so the documented setup is the tested one.
func configureVault(ctx context.Context) error {
	v, err := env.vault.Client()
	if err != nil {
		return err
	}
	if err := v.Sys().UnmountWithContext(ctx, "secret"); err != nil {
		return err
	}
	if err := v.Sys().MountWithContext(ctx, "secret", &api.MountInput{Type: "kv", Options: map[string]string{"version": "1"}}); err != nil {
		return err
	}
	return vaultSetup(ctx, env.vault)
}

// vaultSetup runs deploy/examples/vault-setup.sh against the test cluster and a test Vault,
// with no VAULT_* or KUBECONFIG setting of the developer's leaking in.
func vaultSetup(ctx context.Context, v *vaulttest.Server, extraEnv ...string) error {
	root, err := testkit.ModuleRoot()
	if err != nil {
		return err
	}
	bin, err := vaulttest.Binary()
	if err != nil {
		return err
	}
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		return fmt.Errorf("kubectl is needed to run deploy/examples/vault-setup.sh: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "deploy/examples/vault-setup.sh"))
	cmd.Env = append([]string{
		"PATH=/usr/bin:/bin", "HOME=" + env.dir,
		"VAULT=" + bin, "KUBECTL=" + kubectl,
		"VAULT_ADDR=" + v.Addr, "VAULT_TOKEN=" + v.RootToken,
		"KUBECONFIG=" + env.c.AdminKubeconfig(),
	}, extraEnv...)
	if v.CACert != "" {
		cmd.Env = append(cmd.Env, "VAULT_CACERT="+v.CACert)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("deploy/examples/vault-setup.sh: %v\n%s", err, out)
	}
	return nil
}

// startWebhook runs the product binary's webhook with a certificate for 127.0.0.1.
func startWebhook(ctx context.Context) error {
	env.certFile, env.keyFile = filepath.Join(env.dir, "webhook.crt"), filepath.Join(env.dir, "webhook.key")
	if err := env.c.CA.Issue(env.certFile, env.keyFile, "vault-injector", nil, false, "127.0.0.1", "localhost"); err != nil {
		return err
	}
	env.webhookAddr = "127.0.0.1:" + cluster.FreePort()
	return restartWebhook(ctx)
}

func restartWebhook(ctx context.Context) error {
	env.webhookLog = filepath.Join(env.dir, "webhook.log")
	f, err := os.OpenFile(env.webhookLog, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(env.binary, "webhook", "--listen="+env.webhookAddr, "--tls-cert-file="+env.certFile, "--tls-key-file="+env.keyFile,
		"--vault-address="+env.vault.Addr, "--agent-image="+agentImage, "--agent-image-pull-policy=Never", "--log-level=debug",
		// --env-style=auto (the default) watches the nodes: the test cluster runs its kubelet.
		"--kubeconfig="+env.c.AdminKubeconfig())
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	env.webhook = cmd
	env.webhookDone = make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); f.Close(); close(done) }(env.webhookDone)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(env.c.CA.CertPEM)
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get("https://" + env.webhookAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("webhook not ready: %v\n%s", err, tailFile(env.webhookLog, 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func stopWebhook() {
	_ = env.webhook.Process.Signal(syscall.SIGTERM)
	<-env.webhookDone
}

// webhookMetric reads one sample of the webhook's admission counter.
func webhookMetric(t *testing.T, outcome, reason string) float64 {
	t.Helper()
	return metricFrom(t, env.webhookAddr, env.c.CA.CertPEM, outcome, reason)
}

// metricFrom reads the admission counter of the webhook at addr, verifying its certificate
// against caPEM.
func metricFrom(t *testing.T, addr string, caPEM []byte, outcome, reason string) float64 {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	resp, err := client.Get("https://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	want := fmt.Sprintf(`vault_injector_admission_requests_total{outcome="%s",reason="%s"} `, outcome, reason)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, want) {
			var v float64
			fmt.Sscanf(strings.TrimPrefix(line, want), "%g", &v)
			return v
		}
	}
	return 0
}

// registerWebhook registers /mutate the way operators do: CREATE pods, labelled namespaces
// only, kube-system excluded, only pods with our annotations (the chart's matchCondition), no
// side effects, short timeout, reinvocation if needed.
func registerWebhook(ctx context.Context, name string, policy admissionregistrationv1.FailurePolicyType) error {
	mwc := webhookConfiguration(name, "https://"+env.webhookAddr+"/mutate", policy, injectorMatchConditions,
		map[string]string{"vault-injector.io/inject": "enabled"})
	_, err := env.c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, mwc, metav1.CreateOptions{})
	return err
}

// webhookConfiguration is that registration for a webhook at url, sending the pods that match
// conditions in the namespaces labelled nsLabels.
func webhookConfiguration(name, url string, policy admissionregistrationv1.FailurePolicyType, conditions []admissionregistrationv1.MatchCondition, nsLabels map[string]string) *admissionregistrationv1.MutatingWebhookConfiguration {
	none := admissionregistrationv1.SideEffectClassNone
	timeout := int32(5)
	reinvoke := admissionregistrationv1.IfNeededReinvocationPolicy
	scope := admissionregistrationv1.NamespacedScope
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "pods.vault-injector.io",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: env.c.CA.CertPEM},
			Rules:                   []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}, Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}, Scope: &scope}}},
			FailurePolicy:           &policy,
			SideEffects:             &none,
			TimeoutSeconds:          &timeout,
			AdmissionReviewVersions: []string{"v1"},
			ReinvocationPolicy:      &reinvoke,
			MatchConditions:         conditions,
			NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: nsLabels,
				MatchExpressions: []metav1.LabelSelectorRequirement{{
					Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"kube-system"},
				}},
			},
		}},
	}
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return lastLines(string(b), n)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func rssKiB(pid int) int { kib, _ := procstat.Memory(pid); return kib }
