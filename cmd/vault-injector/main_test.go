package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/vault-injector/vault-injector/certs"
	"github.com/vault-injector/vault-injector/certs/certstest"
)

func runCmd(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

const pod = `apiVersion: v1
kind: Pod
metadata:
  name: app
  annotations:
    vault-injector.io/role: app
    vault-injector.io/secret-db: secret/data/db
spec:
  containers:
  - name: app
    image: app
`

func TestInjectCommand(t *testing.T) {
	code, out, errOut := runCmd(t, pod, "inject", "-f", "-", "--sidecar-style=classic", "--agent-image=example/agent:1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"name: vault-injector-init", "name: vault-injector-agent", "image: example/agent:1"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func TestInjectCommandDenies(t *testing.T) {
	bad := strings.Replace(pod, "role: app", "role: app\n    vault-injector.io/mode: forever", 1)
	f := filepath.Join(t.TempDir(), "pod.yaml")
	if err := os.WriteFile(f, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCmd(t, "", "inject", "-f", f)
	if code != 1 || out != "" || !strings.Contains(errOut, `vault-injector.io/mode="forever" is invalid: expected "sidecar" or "init"`) {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestFlagsFromEnvironment(t *testing.T) {
	t.Setenv("VAULT_INJECTOR_AGENT_IMAGE", "from-env/agent:2")
	t.Setenv("VAULT_INJECTOR_SIDECAR_STYLE", "sideways")
	code, _, errOut := runCmd(t, pod, "inject")
	if code != 1 || !strings.Contains(errOut, `--sidecar-style="sideways"`) {
		t.Fatalf("bad env value not reported: exit %d %q", code, errOut)
	}
	t.Setenv("VAULT_INJECTOR_SIDECAR_STYLE", "native")
	code, out, errOut := runCmd(t, pod, "inject")
	if code != 0 || !strings.Contains(out, "image: from-env/agent:2") {
		t.Fatalf("env override not applied: exit %d %s", code, errOut)
	}
	// A flag on the command line wins over the environment.
	_, out, _ = runCmd(t, pod, "inject", "--agent-image=flag/agent:3")
	if !strings.Contains(out, "image: flag/agent:3") {
		t.Errorf("flag did not win over env")
	}
}

func TestHelpListsEnvOverrides(t *testing.T) {
	code, _, errOut := runCmd(t, "", "webhook", "--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"--listen", "$VAULT_INJECTOR_VAULT_ADDRESS", "--tls-cert-file", "--sidecar-style", "--token-audience",
		"--cert-mode", "$VAULT_INJECTOR_KUBECONFIG", "--namespace", "--service-name", "--cert-secret-name", "--webhook-config-name", "--cert-leaf-lifetime", "--cert-dns-names"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestWebhookNeedsTLS(t *testing.T) {
	code, _, errOut := runCmd(t, "", "webhook", "--cert-mode=files")
	if code != 1 || !strings.Contains(errOut, "--tls-cert-file and --tls-key-file are required") {
		t.Fatalf("exit %d %q", code, errOut)
	}
}

func TestWebhookCertFlagErrors(t *testing.T) {
	t.Setenv("POD_NAMESPACE", "")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	old := serviceAccountNamespaceFile
	serviceAccountNamespaceFile = filepath.Join(t.TempDir(), "namespace")
	t.Cleanup(func() { serviceAccountNamespaceFile = old })
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"files mode without files", []string{"--cert-mode=files"}, "--cert-mode=files: --tls-cert-file and --tls-key-file are required"},
		{"files mode inferred, key missing", []string{"--tls-cert-file=tls.crt"}, "--tls-cert-file and --tls-key-file are required"},
		{"files mode, missing files", []string{"--tls-cert-file=/nonexistent/tls.crt", "--tls-key-file=/nonexistent/tls.key"}, "/nonexistent/tls.crt"},
		{"unknown mode", []string{"--cert-mode=acme"}, `--cert-mode="acme": expected self-managed or files`},
		{"self-managed with files", []string{"--cert-mode=self-managed", "--tls-cert-file=a", "--tls-key-file=b"}, "are for --cert-mode=files"},
		{"no namespace", nil, "--namespace is empty"},
		{"not in a pod", []string{"--namespace=ns"}, "not running in a pod"},
		{"bad kubeconfig", []string{"--namespace=ns", "--kubeconfig=/nonexistent/kubeconfig"}, `--kubeconfig="/nonexistent/kubeconfig"`},
		{"leaf lifetime too short", []string{"--namespace=ns", "--cert-leaf-lifetime=1s"}, "--cert-leaf-lifetime=1s: expected at least 3s"},
		{"CA lifetime too short", []string{"--namespace=ns", "--cert-leaf-lifetime=1h", "--cert-ca-lifetime=90m"}, "--cert-ca-lifetime=1h30m0s: expected at least twice"},
		{"bad IP", []string{"--namespace=ns", "--cert-ip-addresses=localhost"}, `--cert-ip-addresses: "localhost" is not an IP address`},
		{"empty service", []string{"--namespace=ns", "--service-name="}, "--service-name is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runCmd(t, "", append([]string{"webhook"}, tc.args...)...)
			if code != 1 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q, want it to contain %q", code, errOut, tc.want)
			}
		})
	}
}

// TestWebhookSelfManaged runs the webhook in self-managed mode against a fake API: it creates
// the Secret (named by an env override), sets caBundle, and serves HTTPS that a client trusting
// caBundle accepts.
func TestWebhookSelfManaged(t *testing.T) {
	path := "/mutate"
	client := fake.NewClientset(&admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "vault-injector"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:         "pods.vault-injector.io",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{Namespace: "injector-ns", Name: "vault-injector", Path: &path}},
		}},
	})
	old := newKubeClient
	newKubeClient = func(kubeconfig string) (certs.API, error) { return certstest.Clientset{Interface: client}, nil }
	t.Cleanup(func() { newKubeClient = old })
	t.Setenv("POD_NAMESPACE", "injector-ns")
	t.Setenv("VAULT_INJECTOR_CERT_SECRET_NAME", "from-env-tls")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	done := make(chan int, 1)
	var errb bytes.Buffer
	go func() {
		done <- run(ctx, []string{"webhook", "--listen=" + addr, "--cert-dns-names=127.0.0.1,webhook.example", "--env-style=file"}, strings.NewReader(""), io.Discard, &errb)
	}()

	var bundle []byte
	deadline := time.Now().Add(10 * time.Second)
	for {
		mwc, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "vault-injector", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if bundle = mwc.Webhooks[0].ClientConfig.CABundle; len(bundle) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("caBundle not set within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	sec, err := client.CoreV1().Secrets("injector-ns").Get(ctx, "from-env-tls", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("certificate secret: %v", err)
	}
	if sec.Type != corev1.SecretTypeTLS || len(sec.Data["ca.key"]) == 0 {
		t.Errorf("secret type %q, keys %d", sec.Type, len(sec.Data))
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(bundle)
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	var resp *http.Response
	for {
		resp, err = hc.Get("https://" + addr + "/healthz")
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz: %s", resp.Status)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("webhook did not stop")
	}
	if strings.Contains(errb.String(), "PRIVATE KEY") {
		t.Error("logs contain key material")
	}
}

func TestUnknownCommand(t *testing.T) {
	if code, _, errOut := runCmd(t, "", "frobnicate"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Fatalf("exit %d %q", code, errOut)
	}
}
