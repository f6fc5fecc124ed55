package doctor

import (
	"context"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/vault-injector/vault-injector/agentconfig"
	"github.com/vault-injector/vault-injector/patch"
)

func TestIdentityUsesReadsTemplatesConfigMap(t *testing.T) {
	ann := map[string]string{
		"vault-injector.io/role":                "r",
		"vault-injector.io/secret-plain":        "secret/plain",
		"vault-injector.io/template-inline":     `{{ with secret "kv/inline" }}{{ .Data.data.x }}{{ end }}`,
		"vault-injector.io/templates-configmap": "tmpl",
	}
	req, err := agentconfig.FromAnnotations(ann, agentconfig.Defaults{Address: "http://vault", AuthPath: "auth/kubernetes", SecretsPath: agentconfig.SecretsDir, RefreshInterval: defaultRefresh})
	if err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "tmpl", Namespace: "ns"}, Data: map[string]string{
		"app.ctmpl":  `{{ with secret "kv/from-configmap" }}{{ end }}{{ with secret (env "P") }}{{ end }}`,
		"README.txt": `{{ with secret "kv/not-a-template" }}{{ end }}`,
	}}
	uses, fs := identityUses(context.Background(), kubeOf(cm), "ns", req.Agent, req, agentconfig.DefaultIdentity, "s")
	want := []vaultUse{{"kv/from-configmap", "read"}, {"kv/inline", "read"}, {"secret/plain", "read"}}
	if !reflect.DeepEqual(uses, want) {
		t.Errorf("uses %v, want %v", uses, want)
	}
	if len(fs) != 1 || fs[0].Status != Warn || !strings.Contains(fs[0].Message, "1 secret call(s) compute their path") {
		t.Errorf("findings %+v", fs)
	}
	_, fs = identityUses(context.Background(), kubeOf(), "ns", req.Agent, req, agentconfig.DefaultIdentity, "s")
	if len(fs) != 1 || fs[0].Status != Fail || !strings.Contains(fs[0].Message, "templates ConfigMap ns/tmpl") {
		t.Errorf("missing ConfigMap: %+v", fs)
	}
}

func TestAgentConfigForPrefersTheWebhooksAnswer(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{"vault-injector.io/role": "r", "vault-injector.io/secret-a": "secret/a"}}}
	injected := pod.DeepCopy()
	cfg := &agentconfig.Config{Version: agentconfig.Version, Mode: agentconfig.ModeSidecar, SecretsDir: agentconfig.SecretsDir, HomeDir: agentconfig.HomeDir,
		ServiceAccountTokenFile: agentconfig.ServiceAccountTokenFile, RefreshInterval: agentconfig.Duration(defaultRefresh),
		Identities: []agentconfig.Identity{{Name: "default", Method: "kubernetes", AuthPath: "auth/other", Role: "r", Address: "https://vault.vault.svc:8200"}},
		Secrets:    []agentconfig.Secret{{Name: "a", Identity: "default", Path: "secret/a", File: "a", Perms: 0o644}}}
	b, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	injected.Annotations[agentconfig.AnnotationAgentConfig] = string(b)
	s := subject{Name: "s", Pod: pod}
	got, _, f := agentConfigFor(Options{}, s, &dryRun{Pod: injected, Injected: true})
	if f != nil || got.Identities[0].AuthPath != "auth/other" {
		t.Errorf("from the dry-run: %+v %+v", got, f)
	}
	got, _, f = agentConfigFor(Options{AuthPath: "auth/k8s"}, s, nil)
	if f != nil || got.Identities[0].AuthPath != "auth/k8s" || got.Identities[0].Role != "r" {
		t.Errorf("from the annotations: %+v %+v", got, f)
	}
	bad := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{"vault-injector.io/secret-a": "secret/a", "vault-injector.io/mode": "often"}}}
	if _, _, f := agentConfigFor(Options{}, subject{Name: "s", Pod: bad}, nil); f == nil || f.Status != Fail || !strings.Contains(f.Message, "vault-injector.io/mode") {
		t.Errorf("invalid annotation: %+v", f)
	}
}

func TestTokenAudienceFromTheInjectedPod(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{Volumes: []corev1.Volume{{Name: patch.TokenVolume, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: "https://vault.example"}}}}}}}}}
	if got := tokenAudience(Options{TokenAudience: "vault"}, subject{Pod: &corev1.Pod{}}, &dryRun{Pod: pod}); got != "https://vault.example" {
		t.Errorf("got %q", got)
	}
	if got := tokenAudience(Options{TokenAudience: "vault"}, subject{Pod: &corev1.Pod{}}, nil); got != "vault" {
		t.Errorf("default: got %q", got)
	}
}

// Run on a fake cluster: an unlabelled namespace and no Vault address give the namespace ✖
// and the Vault checks !, and the exit code says so.
func TestRunUnlabelledNamespaceWithoutVault(t *testing.T) {
	hook := chartHook()
	m := mwc("vi", WebhookName)
	url := "https://127.0.0.1:9443/mutate"
	hook.ClientConfig = m.Webhooks[0].ClientConfig
	hook.ClientConfig.Service, hook.ClientConfig.URL = nil, &url
	caPEM, cert := testCA(t, "127.0.0.1")
	hook.ClientConfig.CABundle = caPEM
	m.Webhooks[0] = *hook
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "app", Annotations: map[string]string{"vault-injector.io/role": "r", "vault-injector.io/secret-a": "secret/a"}}}
	c := fake.NewClientset(m, ns("app", nil), pod)
	c.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return true, a.(k8stesting.CreateActionImpl).Object, nil // not injected: the namespace is not selected
	})
	r, err := Run(context.Background(), Options{Client: fakeKube{c}, Dialer: &tlsDialer{cert: cert}}, Target{Namespace: "app", Kind: "pod", Name: "app"})
	if err != nil {
		t.Fatal(err)
	}
	byCheck := map[string]Finding{}
	for _, f := range r.Findings {
		byCheck[f.Check] = f
	}
	for check, want := range map[string]Status{
		"webhook-configuration": Pass, "webhook-pods": Pass, "webhook-certificate": Pass,
		"namespace-selector": Fail, "match-conditions": Pass, "opt-out": Pass, "dry-run": Fail, "drift": Fail, "vault": Warn,
	} {
		if byCheck[check].Status != want {
			t.Errorf("%s: %+v, want %s", check, byCheck[check], want)
		}
	}
	if r.ExitCode() != 1 || r.Failed != 3 {
		t.Errorf("exit %d, failed %d", r.ExitCode(), r.Failed)
	}
}
