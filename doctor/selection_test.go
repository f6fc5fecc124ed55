package doctor

import (
	"context"
	"os"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"sigs.k8s.io/yaml"
)

// chartHook is our webhook as the chart renders it.
func chartHook() *admissionregistrationv1.MutatingWebhook {
	return &admissionregistrationv1.MutatingWebhook{
		Name: WebhookName,
		NamespaceSelector: &metav1.LabelSelector{
			MatchLabels:      map[string]string{optInLabel: "enabled"},
			MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"kube-system"}}},
		},
		MatchConditions: []admissionregistrationv1.MatchCondition{{
			Name:       "has-injector-annotation",
			Expression: "has(object.metadata.annotations) && object.metadata.annotations.exists(k,\n k.startsWith('vault-injector.io/'))",
		}},
	}
}

func ns(name string, labels map[string]string) *corev1.Namespace {
	l := map[string]string{"kubernetes.io/metadata.name": name}
	for k, v := range labels {
		l[k] = v
	}
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}}
}

func TestCheckNamespaceSelector(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ns      *corev1.Namespace
		want    Status
		wantFix string
	}{
		{"labelled", ns("app", map[string]string{optInLabel: "enabled"}), Pass, ""},
		{"not labelled", ns("app", nil), Fail, "kubectl label namespace app vault-injector.io/inject=enabled, then roll its workloads"},
		{"labelled otherwise", ns("app", map[string]string{optInLabel: "true"}), Fail, "kubectl label namespace app vault-injector.io/inject=enabled, then roll its workloads"},
		{"excluded", ns("kube-system", map[string]string{optInLabel: "enabled"}), Fail, "excluded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := checkNamespaceSelector(tc.ns, chartHook())
			if f.Status != tc.want || !strings.Contains(f.Fix, tc.wantFix) {
				t.Errorf("got %+v", f)
			}
		})
	}
}

func TestCheckObjectSelector(t *testing.T) {
	h := chartHook()
	if f := checkObjectSelector("s", &corev1.Pod{}, h); f.Status != Pass {
		t.Errorf("no selector: %+v", f)
	}
	h.ObjectSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"shard": "a"}}
	if f := checkObjectSelector("s", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"shard": "a"}}}, h); f.Status != Pass {
		t.Errorf("matching: %+v", f)
	}
	if f := checkObjectSelector("s", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"shard": "b"}}}, h); f.Status != Fail || !strings.Contains(f.Message, "shard=a") {
		t.Errorf("not matching: %+v", f)
	}
}

func TestCheckMatchConditions(t *testing.T) {
	two := chartHook()
	two.MatchConditions[0].Expression = "has(object.metadata.annotations) && object.metadata.annotations.exists(k, k.startsWith('vault-injector.io/') || k.startsWith('vault.hashicorp.com/'))"
	other := chartHook()
	other.MatchConditions = append(other.MatchConditions, admissionregistrationv1.MatchCondition{Name: "mine", Expression: "object.metadata.name != 'x'"})
	for _, tc := range []struct {
		name string
		hook *admissionregistrationv1.MutatingWebhook
		ann  map[string]string
		want Status
	}{
		{"ours", chartHook(), map[string]string{"vault-injector.io/role": "r"}, Pass},
		{"none", chartHook(), map[string]string{"other": "x"}, Fail},
		{"no annotations", chartHook(), nil, Fail},
		{"hashicorp without the prefix", chartHook(), map[string]string{"vault.hashicorp.com/role": "r"}, Fail},
		{"hashicorp with the prefix", two, map[string]string{"vault.hashicorp.com/role": "r"}, Pass},
		{"unknown expression", other, map[string]string{"vault-injector.io/role": "r"}, Warn},
		{"no conditions", &admissionregistrationv1.MutatingWebhook{}, nil, Pass},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := checkMatchConditions("s", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: tc.ann}}, tc.hook)
			if f.Status != tc.want {
				t.Errorf("got %+v", f)
			}
		})
	}
}

func FuzzShippedPrefixes(f *testing.F) {
	f.Add("has(object.metadata.annotations) && object.metadata.annotations.exists(k, k.startsWith('a/'))")
	f.Add("has(object.metadata.annotations) && object.metadata.annotations.exists(k, k.startsWith('a/') || k.startsWith(''))")
	f.Add("true")
	f.Fuzz(func(t *testing.T, expr string) {
		prefixes, ok := shippedPrefixes(expr)
		if !ok && prefixes != nil {
			t.Errorf("prefixes %v without a match", prefixes)
		}
	})
}

func TestCheckOptOut(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want Status
	}{{"false", Fail}, {"0", Fail}, {"true", Pass}, {"", Pass}} {
		ann := map[string]string{}
		if tc.v != "" {
			ann["vault-injector.io/inject"] = tc.v
		}
		if f := checkOptOut("s", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: ann}}); f.Status != tc.want {
			t.Errorf("inject=%q: %+v", tc.v, f)
		}
	}
}

func TestCheckDryRun(t *testing.T) {
	for _, tc := range []struct {
		name    string
		answer  func(p *corev1.Pod) (*corev1.Pod, error)
		want    Status
		wantMsg string
	}{
		{"injected", func(p *corev1.Pod) (*corev1.Pod, error) {
			p.Annotations["vault-injector.io/status"] = "{}"
			return p, nil
		}, Pass, "comes back injected"},
		{"not injected", func(p *corev1.Pod) (*corev1.Pod, error) { return p, nil }, Fail, "without injection"},
		{"denied", func(*corev1.Pod) (*corev1.Pod, error) {
			return nil, errString(`admission webhook "pods.vault-injector.io" denied the request: annotation vault-injector.io/mode="x" is invalid`)
		}, Fail, `denied the request: annotation vault-injector.io/mode=\"x\" is invalid`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fake.NewClientset()
			var sawDryRun bool
			c.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
				ca := a.(k8stesting.CreateActionImpl)
				sawDryRun = len(ca.CreateOptions.DryRun) == 1 && ca.CreateOptions.DryRun[0] == metav1.DryRunAll
				p, err := tc.answer(ca.Object.(*corev1.Pod))
				return true, p, err
			})
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "ns", Annotations: map[string]string{"vault-injector.io/role": "r"}}}
			_, f := checkDryRun(context.Background(), fakeKube{c}, "s", pod)
			if f.Status != tc.want || !strings.Contains(f.Message, tc.wantMsg) {
				t.Errorf("got %+v", f)
			}
			if !sawDryRun {
				t.Error("the create was not a dry run")
			}
		})
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// The expression the kustomize base ships (the chart renders the same one; the e2e suite
// checks the two agree) is one doctor evaluates.
func TestShippedExpressionIsRecognised(t *testing.T) {
	raw, err := os.ReadFile("../deploy/kustomize/base/mutatingwebhookconfiguration.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var m admissionregistrationv1.MutatingWebhookConfiguration
	if err := yaml.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Webhooks) != 1 || m.Webhooks[0].Name != WebhookName || len(m.Webhooks[0].MatchConditions) != 1 {
		t.Fatalf("unexpected base: %+v", m.Webhooks)
	}
	prefixes, ok := shippedPrefixes(m.Webhooks[0].MatchConditions[0].Expression)
	if !ok || len(prefixes) != 1 || prefixes[0] != "vault-injector.io/" {
		t.Errorf("shippedPrefixes(%q) = %v, %v", m.Webhooks[0].MatchConditions[0].Expression, prefixes, ok)
	}
}
