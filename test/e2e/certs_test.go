//go:build e2e

package e2e

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/vault-injector/vault-injector/test/cluster"
	"github.com/vault-injector/vault-injector/test/testkit"
)

// TestSelfManagedCertsRotateWithoutFailedAdmissions runs two webhook replicas in self-managed
// certificate mode with the arguments and RBAC the Helm chart renders (the replicas log in with
// a token of the chart's ServiceAccount, so missing permissions fail the test). Both must serve
// one certificate from one Secret, set caBundle once, and, with a leaf living 9 s and a CA
// living 24 s, renew the leaf and rotate the CA while the API server keeps calling both of
// them: a loop of pod creations must see zero failed admissions.
func TestSelfManagedCertsRotateWithoutFailedAdmissions(t *testing.T) {
	common := []string{"--cert-leaf-lifetime=9s", "--cert-ca-lifetime=24s", "--cert-sync-interval=1s"}
	r := startCertReplicas(t, "vi-certs", common, common)
	c0, _ := r.served(r.ports[0])
	c1, _ := r.served(r.ports[1])
	if !c0.Equal(c1) {
		t.Error("the two replicas serve different certificates")
	}
	if n := countInLogs(r.logs, `caBundle updated"`); n != 1 {
		t.Errorf("caBundle written %d times by two replicas, want once", n)
	}
	if n := countInLogs(r.logs, `created CA and serving certificate"`); n != 1 {
		t.Errorf("Secret created %d times, want once", n)
	}

	// Pods keep coming while the leaf is renewed and the CA rotated.
	leaves, cas := map[string]bool{}, map[string]bool{}
	res := r.admitWhile(t, 1, 150*time.Millisecond, func(elapsed time.Duration) bool {
		for _, p := range r.ports {
			if c, err := r.served(p); err == nil {
				leaves[fingerprint(c.Raw)] = true
			}
		}
		if b, err := r.bundle(); err == nil {
			for _, c := range parseBundle(b) {
				cas[fingerprint(c.Raw)] = true
			}
		}
		return elapsed < 32*time.Second
	})
	t.Logf("%d pods admitted, %d failed; %d distinct serving certificates and %d CAs seen in 32s", res.admitted, res.failed, len(leaves), len(cas))
	if res.failed > 0 {
		t.Errorf("%d admissions failed during rotation: %s", res.failed, strings.Join(res.failures, " | "))
	}
	if len(leaves) < 3 {
		t.Errorf("saw %d serving certificates: the 9s leaf was not renewed", len(leaves))
	}
	if len(cas) < 2 {
		t.Errorf("saw %d CAs in caBundle: the 24s CA was not rotated", len(cas))
	}
	r.noErrorLogs(t)
}

// TestSelfManagedSecretDeletedWithoutFailedAdmissions: two replicas under load (four clients
// creating pods without pause), the Secret is deleted: zero failed admissions while one replica
// makes a new CA and both move to its certificate. The replicas sync at different paces (2 s
// and 12 s) so that one serves the old CA's certificate for seconds after the other has
// published the new CA: the old CA must stay in caBundle, and the new certificate is served
// only once the API server trusts it.
func TestSelfManagedSecretDeletedWithoutFailedAdmissions(t *testing.T) {
	r := startCertReplicas(t, "vi-certs-del", []string{"--cert-sync-interval=2s"}, []string{"--cert-sync-interval=12s"})
	b, err := r.bundle()
	if err != nil {
		t.Fatal(err)
	}
	oldCAs := parseBundle(b)
	if len(oldCAs) != 1 {
		t.Fatalf("caBundle holds %d CAs before the deletion, want 1", len(oldCAs))
	}
	oldCA := oldCAs[0]
	deleted := false
	var deletedAt time.Duration
	newOnBoth := func() bool {
		for _, p := range r.ports {
			c, err := r.served(p)
			if err != nil || c.CheckSignatureFrom(oldCA) == nil {
				return false
			}
		}
		return true
	}
	res := r.admitWhile(t, 4, 0, func(elapsed time.Duration) bool {
		switch {
		case !deleted && elapsed > 3*time.Second:
			if err := env.c.Client.CoreV1().Secrets(r.certNS).Delete(ctx, r.secretName, metav1.DeleteOptions{}); err != nil {
				t.Errorf("delete the Secret: %v", err)
				return false
			}
			deleted, deletedAt = true, elapsed
		case deleted && newOnBoth() && elapsed > deletedAt+3*time.Second:
			return false // both moved on, and the load went on a little longer
		}
		return elapsed < 60*time.Second
	})
	t.Logf("%d pods admitted, %d failed (4 clients, %s in all, Secret deleted at %s)", res.admitted, res.failed, res.took.Round(100*time.Millisecond), deletedAt.Round(100*time.Millisecond))
	if res.failed > 0 {
		t.Errorf("%d admissions failed after the Secret was deleted: %s", res.failed, strings.Join(res.failures, " | "))
	}
	if !deleted {
		t.Fatal("the Secret was never deleted")
	}
	if !newOnBoth() {
		t.Error("60s after the deletion, a replica still serves a certificate of the old CA")
	}
	if _, err := env.c.Client.CoreV1().Secrets(r.certNS).Get(ctx, r.secretName, metav1.GetOptions{}); err != nil {
		t.Errorf("the Secret was not made again: %v", err)
	}
	b, err = r.bundle()
	if cas := parseBundle(b); err != nil || len(cas) != 2 || !slices.ContainsFunc(cas, oldCA.Equal) {
		t.Errorf("caBundle should hold the old CA (until it expires) and the new one: %d CAs, %v", len(cas), err)
	}
	if n := countInLogs(r.logs, `created CA and serving certificate"`); n != 2 {
		t.Errorf("Secret created %d times, want twice (at start and after the deletion)", n)
	}
	r.noErrorLogs(t)
}

// certReplicas are two webhook processes in self-managed certificate mode, registered by URL
// in one MutatingWebhookConfiguration (one webhook entry each, so every admission calls both)
// that selects only the pod namespace of this test.
type certReplicas struct {
	certNS, podNS, secretName, webhookConfig string
	ports, logs                              []string
}

// startCertReplicas creates the chart's RBAC in <prefix>, a pod namespace <prefix>-pods, the
// webhook configuration, and starts the two replicas together (so they race to create the
// Secret) with the chart's arguments plus extra0 / extra1; it returns once both serve and
// caBundle is set.
func startCertReplicas(t *testing.T, prefix string, extra0, extra1 []string) *certReplicas {
	t.Helper()
	root, err := testkit.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	r := &certReplicas{certNS: prefix, secretName: "vault-injector-tls"}
	namespace(t, r.certNS, false, nil)
	r.podNS = namespace(t, prefix+"-pods", false, map[string]string{"vi-certs-test": prefix})

	// The chart's RBAC, created for real, and its webhook arguments.
	objs := decodeDocs(t, helmTemplateNS(filepath.Join(root, "deploy/helm/vault-injector"), r.certNS)(t))
	dyn, err := dynamic.NewForConfig(env.c.Config)
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	var serviceAccount string
	for _, o := range objs {
		gvr := map[string]schema.GroupVersionResource{
			"ServiceAccount":     {Version: "v1", Resource: "serviceaccounts"},
			"Role":               {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"},
			"RoleBinding":        {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"},
			"ClusterRole":        {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"},
			"ClusterRoleBinding": {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"},
		}
		switch kind := o.GetKind(); kind {
		case "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding":
			ri := dyn.Resource(gvr[kind])
			var err error
			if kind == "ClusterRole" || kind == "ClusterRoleBinding" {
				_, err = ri.Create(ctx, o, metav1.CreateOptions{})
				name := o.GetName()
				t.Cleanup(func() { _ = ri.Delete(ctx, name, metav1.DeleteOptions{}) })
			} else {
				_, err = ri.Namespace(r.certNS).Create(ctx, o, metav1.CreateOptions{})
			}
			if err != nil {
				t.Fatalf("create %s %s from the chart: %v", kind, o.GetName(), err)
			}
			if kind == "ServiceAccount" {
				serviceAccount = o.GetName()
			}
		case "Deployment":
			var d appsv1.Deployment
			fromUnstructured(t, o, &d)
			args = d.Spec.Template.Spec.Containers[0].Args
		case "MutatingWebhookConfiguration":
			r.webhookConfig = o.GetName()
		}
	}
	if len(args) == 0 || serviceAccount == "" || r.webhookConfig == "" {
		t.Fatal("the chart rendered no Deployment, ServiceAccount or MutatingWebhookConfiguration")
	}
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--cert-secret-name="); ok {
			r.secretName = v
		}
	}

	// A kubeconfig with the ServiceAccount's token, pointing at the API server on loopback.
	exp := int64(3600)
	tr, err := env.c.Client.CoreV1().ServiceAccounts(r.certNS).CreateToken(ctx, serviceAccount,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caFile := filepath.Join(dir, "cluster-ca.crt")
	if err := os.WriteFile(caFile, env.c.CA.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: e2e, cluster: {server: %q, certificate-authority: %q}}]
users: [{name: sa, user: {token: %q}}]
contexts: [{name: e2e, context: {cluster: e2e, user: sa}}]
current-context: e2e
`, env.c.APIServer, caFile, tr.Status.Token)), 0o600); err != nil {
		t.Fatal(err)
	}

	// The webhook configuration: one entry per replica, so every admission calls both.
	r.ports = []string{cluster.FreePort(), cluster.FreePort()}
	none := admissionregistrationv1.SideEffectClassNone
	fail := admissionregistrationv1.Fail
	timeout := int32(5)
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: r.webhookConfig}}
	for i, p := range r.ports {
		url := "https://127.0.0.1:" + p + "/mutate"
		mwc.Webhooks = append(mwc.Webhooks, admissionregistrationv1.MutatingWebhook{
			Name:         fmt.Sprintf("replica%d.vault-injector.io", i),
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url},
			Rules: []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"vi-certs-test": prefix}},
			FailurePolicy:           &fail,
			SideEffects:             &none,
			TimeoutSeconds:          &timeout,
			AdmissionReviewVersions: []string{"v1"},
		})
	}
	mwcs := env.c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	if _, err := mwcs.Create(ctx, mwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mwcs.Delete(ctx, r.webhookConfig, metav1.DeleteOptions{}) })

	// Two replicas, started together so they race to create the Secret.
	r.logs = make([]string, len(r.ports))
	for i, p := range r.ports {
		r.logs[i] = filepath.Join(dir, fmt.Sprintf("replica%d.log", i))
		f, err := os.Create(r.logs[i])
		if err != nil {
			t.Fatal(err)
		}
		extra := extra0
		if i == 1 {
			extra = extra1
		}
		full := append(append([]string{}, args...), "--listen=127.0.0.1:"+p, "--kubeconfig="+kubeconfig, "--cert-ip-addresses=127.0.0.1", "--log-level=debug")
		cmd := exec.Command(env.binary, append(full, extra...)...)
		cmd.Stdout, cmd.Stderr = f, f
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		log := r.logs[i]
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
			f.Close()
			if t.Failed() {
				t.Logf("%s:\n%s", filepath.Base(log), tailFile(log, 60))
			}
		})
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := r.bundle()
		_, e0 := r.served(r.ports[0])
		_, e1 := r.served(r.ports[1])
		if err == nil && len(b) > 0 && e0 == nil && e1 == nil {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("replicas not serving with caBundle set after 30s: bundle %d bytes (%v), replica0 %v, replica1 %v", len(b), err, e0, e1)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// served is the certificate a replica presents now.
func (r *certReplicas) served(port string) (*x509.Certificate, error) {
	conn, err := tls.Dial("tcp", "127.0.0.1:"+port, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

// bundle is the caBundle the API server has, the same in every webhook entry.
func (r *certReplicas) bundle() ([]byte, error) {
	m, err := env.c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, r.webhookConfig, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	for _, w := range m.Webhooks[1:] {
		if !bytes.Equal(w.ClientConfig.CABundle, m.Webhooks[0].ClientConfig.CABundle) {
			return nil, fmt.Errorf("webhooks carry different caBundles")
		}
	}
	return m.Webhooks[0].ClientConfig.CABundle, nil
}

type admissions struct {
	admitted, failed int
	failures         []string
	took             time.Duration
}

// admitWhile has clients create pods (dry run: admission, no kubelet) in the pod namespace,
// each pausing between pods, while step (called between rounds from this goroutine with the
// time elapsed) says to go on.
func (r *certReplicas) admitWhile(t *testing.T, clients int, pause time.Duration, step func(elapsed time.Duration) bool) admissions {
	t.Helper()
	var (
		mu   sync.Mutex
		res  admissions
		stop atomic.Bool
		wg   sync.WaitGroup
	)
	start := time.Now()
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				pod := simplePod(fmt.Sprintf("p%d-%d", w, i), nil)
				_, err := env.c.Client.CoreV1().Pods(r.podNS).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
				mu.Lock()
				if err != nil {
					res.failed++
					if len(res.failures) < 5 {
						res.failures = append(res.failures, err.Error())
					}
				} else {
					res.admitted++
				}
				mu.Unlock()
				time.Sleep(pause)
			}
		}()
	}
	for step(time.Since(start)) {
		time.Sleep(100 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	res.took = time.Since(start)
	return res
}

func (r *certReplicas) noErrorLogs(t *testing.T) {
	t.Helper()
	if n := countInLogs(r.logs, `"level":"ERROR"`) + countInLogs(r.logs, "level=ERROR"); n > 0 {
		t.Errorf("%d error lines in the replicas' logs", n)
	}
}

func countInLogs(files []string, s string) int {
	n := 0
	for _, f := range files {
		b, _ := os.ReadFile(f)
		n += strings.Count(string(b), s)
	}
	return n
}

func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:8])
}

func parseBundle(b []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return out
		}
		if c, err := x509.ParseCertificate(block.Bytes); err == nil {
			out = append(out, c)
		}
	}
}
