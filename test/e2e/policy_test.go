//go:build e2e

package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/vault-injector/vault-injector/agentconfig"
	"github.com/vault-injector/vault-injector/patch"
	"github.com/vault-injector/vault-injector/test/cluster"
)

// The policy of TestAdmissionPolicy; %[1]s is Vault's address, %[2]s the shop-web rule's roles.
const policyTemplate = `apiVersion: vault-injector.io/v1alpha1
kind: InjectionPolicy
rules:
- name: shop-web
  match:
    namespaces: [p-shop]
    serviceAccounts: [web, api-*]
  allow:
    roles: [%[2]s]
    authPaths: [auth/kubernetes]
    addresses: ["%[1]s"]
    paths:
      read: ["secret/p-shop/*"]
- name: shop-batch
  match:
    namespaces: [p-shop]
    serviceAccounts: [batch]
  allow:
    roles: [p-shop-batch]
    authPaths: [auth/kubernetes]
    addresses: ["%[1]s"]
    paths:
      read: ["secret/p-shop/batch/*"]
      write: [transit/encrypt/p-shop]
    notifyCommand: true
- name: other-ns
  match:
    namespaces: ["p-oth*"]
  allow:
    roles: [p-other]
    authPaths: [auth/kubernetes]
    addresses: ["%[1]s"]
    vaultNamespaces: ["", "team-*"]
    paths:
      read: ["secret/p-other/**"]
    tlsSkipVerify: true
`

const policyLabel = "vault-injector-test/policy"

// TestAdmissionPolicy runs a webhook with --policy-configmap through the real API server: a
// table of pods × one policy (allowed ones injected, one run; denied ones refused with the exact
// message), the agent refusing a ConfigMap template's path no rule allows, the policy swapped by
// a ConfigMap update and followed within seconds, an invalid update refused while the last good
// policy stays. The webhook reads the ConfigMap with a token of a ServiceAccount that may only
// get/list/watch that one ConfigMap (the chart's Role).
func TestAdmissionPolicy(t *testing.T) {
	shop := namespace(t, "p-shop", false, map[string]string{policyLabel: "enabled"})
	other := namespace(t, "p-other", false, map[string]string{policyLabel: "enabled"})
	home := namespace(t, "p-webhook", false, nil)
	for _, sa := range []string{"batch", "api-v1"} {
		if _, err := env.c.Client.CoreV1().ServiceAccounts(shop).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := env.c.Client.CoreV1().ServiceAccounts(other).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "web"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	role, path := vaultApp(t, shop, "web", "from-vault") // p-shop-reader, secret/p-shop/app
	vaultAddr := env.vault.Addr

	cms := env.c.Client.CoreV1().ConfigMaps(home)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "vault-injector-policy"},
		Data: map[string]string{"policy.yaml": fmt.Sprintf(policyTemplate, vaultAddr, "p-shop-*")}}
	cm, err := cms.Create(ctx, cm, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := policyReaderKubeconfig(t, home, cm.Name)
	// The policy reader's token may read that ConfigMap and nothing else: no nodes to watch, so
	// the env style is fixed.
	addr := startExtraWebhook(t, "--policy-configmap="+home+"/"+cm.Name, "--kubeconfig="+kubeconfig, "--env-style=file")
	conditions := []admissionregistrationv1.MatchCondition{{Name: "has-injector-annotation",
		Expression: "has(object.metadata.annotations) && object.metadata.annotations.exists(k, k.startsWith('vault-injector.io/'))"}}
	mwc := webhookConfiguration("policy.vault-injector.io", "https://"+addr+"/mutate", admissionregistrationv1.Fail, conditions, map[string]string{policyLabel: "enabled"})
	if _, err := env.c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, mwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = env.c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, mwc.Name, metav1.DeleteOptions{})
	})

	ann := func(kv ...string) map[string]string {
		m := map[string]string{"vault-injector.io/address": vaultAddr}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	const (
		kRole = "vault-injector.io/role"
		kSec  = "vault-injector.io/secret-a"
		kTmpl = "vault-injector.io/template-a"
	)
	denied := func(pod, msg string) string {
		return fmt.Sprintf(`admission webhook "pods.vault-injector.io" denied the request: vault-injector: pod %q not injected: policy: %s`, pod, msg)
	}
	rows := []struct {
		name, ns, sa string
		ann          map[string]string
		want         string // empty: allowed and injected
		skipped      bool   // allowed, not injected (nothing asked)
	}{
		{name: "web-ok", ns: shop, sa: "web", ann: ann(kRole, role, kSec, path)},
		{name: "api-glob-sa", ns: shop, sa: "api-v1", ann: ann(kRole, "p-shop-api", kSec, "secret/p-shop/api")},
		{name: "web-role", ns: shop, sa: "web", ann: ann(kRole, "payments-admin", kSec, path),
			want: "namespace p-shop, service account web: role payments-admin not in rule shop-web (allows p-shop-*)"},
		{name: "web-path", ns: shop, sa: "web", ann: ann(kRole, role, kSec, "secret/payments/db"),
			want: "namespace p-shop, service account web: secret a: read of secret/payments/db not in rule shop-web (allows secret/p-shop/*)"},
		{name: "web-deep-path", ns: shop, sa: "web", ann: ann(kRole, role, kSec, "secret/p-shop/a/b"),
			want: "namespace p-shop, service account web: secret a: read of secret/p-shop/a/b not in rule shop-web (allows secret/p-shop/*)"},
		{name: "web-address", ns: shop, sa: "web", ann: ann(kRole, role, kSec, path, "vault-injector.io/address", "https://vault.evil.example:8200"),
			want: fmt.Sprintf("namespace p-shop, service account web: address https://vault.evil.example:8200 not in rule shop-web (allows %s)", vaultAddr)},
		{name: "web-auth-path", ns: shop, sa: "web", ann: ann(kRole, role, kSec, path, "vault-injector.io/auth-path", "auth/other"),
			want: "namespace p-shop, service account web: auth path auth/other not in rule shop-web (allows auth/kubernetes)"},
		{name: "web-tls-skip", ns: shop, sa: "web", ann: ann(kRole, role, kSec, path, "vault-injector.io/tls-skip-verify", "true"),
			want: "namespace p-shop, service account web: tls-skip-verify not allowed by rule shop-web"},
		{name: "web-notify", ns: shop, sa: "web", ann: ann(kRole, role, kSec, path, "vault-injector.io/notify-command", `["/bin/true"]`),
			want: "namespace p-shop, service account web: notify-command not allowed by rule shop-web"},
		{name: "web-template-write", ns: shop, sa: "web", ann: ann(kRole, role, kTmpl, `{{ with secret "transit/encrypt/p-shop" "plaintext=YQ==" }}{{ .Data.ciphertext }}{{ end }}`),
			want: "namespace p-shop, service account web: secret a: write of transit/encrypt/p-shop not in rule shop-web (allows none)"},
		{name: "batch-ok", ns: shop, sa: "batch", ann: ann(kRole, "p-shop-batch", kSec, "secret/p-shop/batch/x", "vault-injector.io/notify-command", `["/bin/true"]`)},
		{name: "batch-role", ns: shop, sa: "batch", ann: ann(kRole, role, kSec, "secret/p-shop/batch/x"),
			want: "namespace p-shop, service account batch: role p-shop-reader not in rule shop-batch (allows p-shop-batch)"},
		{name: "default-sa", ns: shop, sa: "", ann: ann(kRole, role, kSec, path),
			want: "namespace p-shop, service account default: no policy rule matches this namespace and service account"},
		{name: "other-ok", ns: other, sa: "web", ann: ann(kRole, "p-other", kSec, "secret/p-other/a/b", "vault-injector.io/namespace", "team-a", "vault-injector.io/tls-skip-verify", "true")},
		{name: "other-vault-ns", ns: other, sa: "web", ann: ann(kRole, "p-other", kSec, "secret/p-other/a", "vault-injector.io/namespace", "admin"),
			want: `namespace p-other, service account web: Vault namespace admin not in rule other-ns (allows "", team-*)`},
		// The annotation parser refuses such a secret-<name> path; a template's literal reaches the policy.
		{name: "other-dot-dot", ns: other, sa: "web", ann: ann(kRole, "p-other", kTmpl, `{{ with secret "secret/p-other/../p-shop/app" }}{{ .Data.var }}{{ end }}`),
			want: `namespace p-other, service account web: secret a: path secret/p-other/../p-shop/app: the path has an empty, "." or ".." segment: expected a plain Vault path like secret/data/app`},
		{name: "other-two-reasons", ns: other, sa: "web", ann: ann(kRole, "p-shop-reader", kSec, "secret/p-shop/app"),
			want: "namespace p-other, service account web: role p-shop-reader not in rule other-ns (allows p-other), secret a: read of secret/p-shop/app not in rule other-ns (allows secret/p-other/**)"},
		{name: "unannotated", ns: shop, sa: "web", ann: nil, skipped: true},
	}
	podFor := func(name, sa string, a map[string]string) *corev1.Pod {
		p := simplePod(name, a)
		p.Spec.ServiceAccountName = sa
		return p
	}
	// The webhook configuration takes a moment to reach the API server's admission chain.
	waitUntil(t, 20*time.Second, "the policy webhook to inject web-ok", func() (bool, string) {
		got, err := dryRunCreate(t, shop, podFor("web-ok", "web", rows[0].ann))
		return err == nil && injected(got), fmt.Sprint(err)
	})
	for _, r := range rows {
		got, err := dryRunCreate(t, r.ns, podFor(r.name, r.sa, r.ann))
		switch {
		case r.want != "":
			if err == nil {
				t.Errorf("%s: admitted (injected %v), want denial %q", r.name, injected(got), r.want)
			} else if want := denied(r.name, r.want); err.Error() != want {
				t.Errorf("%s: denial\n got %s\nwant %s", r.name, err, want)
			}
		case err != nil:
			t.Errorf("%s: denied, want admitted: %v", r.name, err)
		case r.skipped && injected(got):
			t.Errorf("%s: injected, want untouched", r.name)
		case !r.skipped:
			if !injected(got) {
				t.Errorf("%s: not injected", r.name)
				continue
			}
			cfg, err := agentconfig.Parse([]byte(got.Annotations[agentconfig.AnnotationAgentConfig]))
			if err != nil {
				t.Errorf("%s: agent config: %v", r.name, err)
			} else if len(cfg.PathRules) == 0 {
				t.Errorf("%s: agent config carries no path rules", r.name)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// An allowed pod runs and reads its secret; its agent config holds the rule's globs.
	port := cluster.FreePort()
	web := httpdPod("web-ok", "web", port, rows[0].ann)
	if _, err := env.c.Client.CoreV1().Pods(shop).Create(ctx, web, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod(t, shop, "web-ok", 90*time.Second, "app running", running)
	if got, want := get(t, "http://127.0.0.1:"+port+"/a"), `"var": "from-vault"`; !strings.Contains(got, want) {
		t.Errorf("rendered a = %q, want it to contain %q", got, want)
	}

	// A path the webhook cannot see (a templates ConfigMap) is refused by the agent, naming the
	// rule, before it asks Vault.
	tpl := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "tpl"}, Data: map[string]string{
		"other.ctmpl": `{{ with secret "secret/p-other/x" }}{{ .Data.var }}{{ end }}`}}
	if _, err := env.c.Client.CoreV1().ConfigMaps(shop).Create(ctx, tpl, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sneaky := httpdPod("web-configmap", "web", cluster.FreePort(), ann(kRole, role, "vault-injector.io/templates-configmap", "tpl"))
	if _, err := env.c.Client.CoreV1().Pods(shop).Create(ctx, sneaky, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wantAgent := `policy: read of Vault path \"secret/p-other/x\" by identity \"default\" is not allowed: not in rule shop-web (allows secret/p-shop/*)`
	waitUntil(t, 60*time.Second, "the agent to refuse the ConfigMap template's path", func() (bool, string) {
		b, err := env.c.Client.CoreV1().Pods(shop).GetLogs("web-configmap", &corev1.PodLogOptions{Container: patch.AgentContainer}).DoRaw(ctx)
		return err == nil && strings.Contains(string(b), wantAgent), string(b)
	})

	// The policy swapped through the API: the next admissions follow it within seconds.
	cm.Data["policy.yaml"] = fmt.Sprintf(policyTemplate, vaultAddr, "p-shop-new")
	start := time.Now()
	if cm, err = cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	swapped := denied("web-ok", "namespace p-shop, service account web: role p-shop-reader not in rule shop-web (allows p-shop-new)")
	waitUntil(t, 10*time.Second, "the new policy to deny web-ok", func() (bool, string) {
		_, err := dryRunCreate(t, shop, podFor("web-ok", "web", rows[0].ann))
		return err != nil && err.Error() == swapped, fmt.Sprint(err)
	})
	t.Logf("policy swap followed %s after the ConfigMap update", time.Since(start).Round(10*time.Millisecond))
	if _, err := dryRunCreate(t, shop, podFor("web-new", "web", ann(kRole, "p-shop-new", kSec, path))); err != nil {
		t.Errorf("the new policy's role is denied: %v", err)
	}

	// An invalid update is refused (log line, metric) and the last good policy stays.
	refusedBefore := policyReloads(t, addr, "refused")
	cm.Data["policy.yaml"] = strings.Replace(fmt.Sprintf(policyTemplate, vaultAddr, "p-shop-*"), "roles: [p-shop-batch]", "roles: []", 1)
	if cm, err = cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "the invalid policy to be refused", func() (bool, string) {
		n := policyReloads(t, addr, "refused")
		return n == refusedBefore+1, fmt.Sprintf("refused reloads %v", n)
	})
	if _, err := dryRunCreate(t, shop, podFor("web-ok", "web", rows[0].ann)); err == nil || err.Error() != swapped {
		t.Errorf("after an invalid update web-ok: %v, want the last good policy's denial %q", err, swapped)
	}
	if _, err := dryRunCreate(t, shop, podFor("web-new", "web", ann(kRole, "p-shop-new", kSec, path))); err != nil {
		t.Errorf("after an invalid update, the last good policy's role is denied: %v", err)
	}
}

// policyReaderKubeconfig writes a kubeconfig for a ServiceAccount bound to the chart's policy
// Role: get/list/watch on the one ConfigMap name, nothing else.
func policyReaderKubeconfig(t *testing.T, ns, cmName string) string {
	t.Helper()
	sa := "policy-reader"
	if _, err := env.c.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: sa}, Rules: []rbacv1.PolicyRule{{
		APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{cmName}, Verbs: []string{"get", "list", "watch"}}}}
	if _, err := env.c.Client.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: sa},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: sa},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: ns}}}
	if _, err := env.c.Client.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	exp := int64(3600)
	tr, err := env.c.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.LoadFromFile(env.c.AdminKubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	cur := cfg.Contexts[cfg.CurrentContext]
	cfg.AuthInfos = map[string]*clientcmdapi.AuthInfo{cur.AuthInfo: {Token: tr.Status.Token}}
	file := filepath.Join(t.TempDir(), "policy-reader.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, file); err != nil {
		t.Fatal(err)
	}
	return file
}

// policyReloads reads vault_injector_policy_reloads_total{result} of the webhook at addr.
func policyReloads(t *testing.T, addr, result string) float64 {
	t.Helper()
	return metricLine(t, addr, env.c.CA.CertPEM, fmt.Sprintf(`vault_injector_policy_reloads_total{result="%s"} `, result))
}

// metricLine reads the value of the sample starting with prefix from the /metrics of the
// webhook at addr (0 when absent).
func metricLine(t *testing.T, addr string, caPEM []byte, prefix string) float64 {
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
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, prefix) {
			var v float64
			fmt.Sscanf(strings.TrimPrefix(line, prefix), "%g", &v)
			return v
		}
	}
	return 0
}

// waitUntil polls cond every 100 ms until it holds, or fails the test with its last detail.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", what, timeout, detail)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
