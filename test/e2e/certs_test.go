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
	"strings"
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
)

// TestSelfManagedCertsRotateWithoutFailedAdmissions runs two webhook replicas in self-managed
// certificate mode with the arguments and RBAC the Helm chart renders (the replicas log in with
// a token of the chart's ServiceAccount, so missing permissions fail the test). Both must serve
// one certificate from one Secret, set caBundle once, and, with a leaf living 9 s and a CA
// living 24 s, renew the leaf and rotate the CA while the API server keeps calling both of
// them: a loop of pod creations must see zero failed admissions.
func TestSelfManagedCertsRotateWithoutFailedAdmissions(t *testing.T) {
	const certNS = "vi-certs"
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	namespace(t, certNS, false, nil)
	podNS := namespace(t, "vi-certs-pods", false, map[string]string{"vi-certs-test": "enabled"})

	// The chart's RBAC, created for real, and its webhook arguments.
	objs := decodeDocs(t, helmTemplateNS(filepath.Join(root, "deploy/helm/vault-injector"), certNS)(t))
	dyn, err := dynamic.NewForConfig(env.c.Config)
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	var serviceAccount, webhookConfig string
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
				_, err = ri.Namespace(certNS).Create(ctx, o, metav1.CreateOptions{})
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
			webhookConfig = o.GetName()
		}
	}
	if len(args) == 0 || serviceAccount == "" || webhookConfig == "" {
		t.Fatal("the chart rendered no Deployment, ServiceAccount or MutatingWebhookConfiguration")
	}

	// A kubeconfig with the ServiceAccount's token, pointing at the API server on loopback.
	exp := int64(3600)
	tr, err := env.c.Client.CoreV1().ServiceAccounts(certNS).CreateToken(ctx, serviceAccount,
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
	ports := []string{cluster.FreePort(), cluster.FreePort()}
	none := admissionregistrationv1.SideEffectClassNone
	fail := admissionregistrationv1.Fail
	timeout := int32(5)
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: webhookConfig}}
	for i, p := range ports {
		url := "https://127.0.0.1:" + p + "/mutate"
		mwc.Webhooks = append(mwc.Webhooks, admissionregistrationv1.MutatingWebhook{
			Name:         fmt.Sprintf("replica%d.vault-injector.io", i),
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url},
			Rules: []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"vi-certs-test": "enabled"}},
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
	t.Cleanup(func() { _ = mwcs.Delete(ctx, webhookConfig, metav1.DeleteOptions{}) })

	// Two replicas, started together so they race to create the Secret.
	logs := make([]string, len(ports))
	for i, p := range ports {
		logs[i] = filepath.Join(dir, fmt.Sprintf("replica%d.log", i))
		f, err := os.Create(logs[i])
		if err != nil {
			t.Fatal(err)
		}
		full := append(append([]string{}, args...), "--listen=127.0.0.1:"+p, "--kubeconfig="+kubeconfig, "--cert-ip-addresses=127.0.0.1",
			"--cert-leaf-lifetime=9s", "--cert-ca-lifetime=24s", "--cert-sync-interval=1s", "--log-level=debug")
		cmd := exec.Command(env.binary, full...)
		cmd.Stdout, cmd.Stderr = f, f
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		log := logs[i]
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
			f.Close()
			if t.Failed() {
				t.Logf("%s:\n%s", filepath.Base(log), tailFile(log, 60))
			}
		})
	}
	served := func(port string) (*x509.Certificate, error) {
		conn, err := tls.Dial("tcp", "127.0.0.1:"+port, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0], nil
	}
	bundle := func() ([]byte, error) {
		m, err := mwcs.Get(ctx, webhookConfig, metav1.GetOptions{})
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
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := bundle()
		_, e0 := served(ports[0])
		_, e1 := served(ports[1])
		if err == nil && len(b) > 0 && e0 == nil && e1 == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replicas not serving with caBundle set after 30s: bundle %d bytes (%v), replica0 %v, replica1 %v", len(b), err, e0, e1)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c0, _ := served(ports[0])
	c1, _ := served(ports[1])
	if !c0.Equal(c1) {
		t.Error("the two replicas serve different certificates")
	}
	if n := countInLogs(logs, `caBundle updated"`); n != 1 {
		t.Errorf("caBundle written %d times by two replicas, want once", n)
	}
	if n := countInLogs(logs, `created CA and serving certificate"`); n != 1 {
		t.Errorf("Secret created %d times, want once", n)
	}

	// Pods keep coming while the leaf is renewed and the CA rotated.
	leaves, cas := map[string]bool{}, map[string]bool{}
	admitted, failed := 0, 0
	var failures []string
	end := time.Now().Add(32 * time.Second)
	for i := 0; time.Now().Before(end); i++ {
		pod := simplePod(fmt.Sprintf("p%d", i), nil)
		if _, err := env.c.Client.CoreV1().Pods(podNS).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			failed++
			if len(failures) < 5 {
				failures = append(failures, err.Error())
			}
		} else {
			admitted++
		}
		for _, p := range ports {
			if c, err := served(p); err == nil {
				leaves[fingerprint(c.Raw)] = true
			}
		}
		if b, err := bundle(); err == nil {
			for _, c := range parseBundle(b) {
				cas[fingerprint(c.Raw)] = true
			}
		}
		time.Sleep(150 * time.Millisecond)
	}
	t.Logf("%d pods admitted, %d failed; %d distinct serving certificates and %d CAs seen in 32s", admitted, failed, len(leaves), len(cas))
	if failed > 0 {
		t.Errorf("%d admissions failed during rotation: %s", failed, strings.Join(failures, " | "))
	}
	if len(leaves) < 3 {
		t.Errorf("saw %d serving certificates: the 9s leaf was not renewed", len(leaves))
	}
	if len(cas) < 2 {
		t.Errorf("saw %d CAs in caBundle: the 24s CA was not rotated", len(cas))
	}
	if n := countInLogs(logs, `"level":"ERROR"`) + countInLogs(logs, "level=ERROR"); n > 0 {
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
