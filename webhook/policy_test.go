package webhook_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vault-injector/vault-injector/inject"
	"github.com/vault-injector/vault-injector/policy"
	"github.com/vault-injector/vault-injector/webhook"
	"github.com/vault-injector/vault-injector/webhook/webhooktest"
)

const testPolicy = `apiVersion: vault-injector.io/v1alpha1
kind: InjectionPolicy
rules:
- name: shop
  match: {namespaces: [shop], serviceAccounts: [web]}
  allow: {roles: [r], authPaths: [auth/kubernetes], addresses: ["https://vault.vault.svc:8200"], paths: {read: [secret/*], write: []}}
`

// notLoaded is a configured policy source that has not loaded anything yet.
type notLoaded struct{}

func (notLoaded) Policy() (*policy.Policy, bool) { return nil, false }

func podAs(sa, role string) []byte {
	return []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"app","annotations":{"vault-injector.io/role":"` + role +
		`","vault-injector.io/secret-a":"secret/a"}},"spec":{"serviceAccountName":"` + sa + `","containers":[{"name":"app","image":"x"}]}}`)
}

// Through the handler: the policy allows or denies per namespace and service account (the same
// annotations, so the request memo must not leak a decision), writes the allowing rule's globs
// into the agent config, and counts decisions by rule and outcome.
func TestHandlerAppliesPolicy(t *testing.T) {
	p, err := policy.Parse([]byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		source webhook.PolicySource
		ns, sa string
		role   string
		want   string // empty: injected
		metric [2]string
	}{
		{"allowed", webhook.StaticPolicy{P: p}, "shop", "web", "r", "", [2]string{"shop", "allowed"}},
		{"same annotations, other namespace", webhook.StaticPolicy{P: p}, "payments", "web", "r",
			`vault-injector: pod "app" not injected: policy: namespace payments, service account web: no policy rule matches this namespace and service account`, [2]string{"", "no-match"}},
		{"role refused", webhook.StaticPolicy{P: p}, "shop", "web", "admin",
			`vault-injector: pod "app" not injected: policy: namespace shop, service account web: role admin not in rule shop (allows r)`, [2]string{"shop", "denied"}},
		{"configured, not loaded: fail closed", notLoaded{}, "shop", "web", "r",
			`vault-injector: pod "app" not injected: policy: the webhook has not loaded a valid policy yet; it retries, and the pod can be created again in a few seconds`, [2]string{"", "not-loaded"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := webhooktest.Mutator()
			m.Policy = tc.source
			reg := prometheus.NewRegistry()
			metrics := webhook.NewMetrics(reg)
			h := &webhook.Handler{Mutator: m, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: metrics}
			// Twice: the second answer comes from the request memo.
			for range 2 {
				resp := webhooktest.Review(t, h, tc.ns, podAs(tc.sa, tc.role))
				if tc.want != "" {
					if resp.Allowed || resp.Result == nil || resp.Result.Message != tc.want {
						t.Fatalf("got allowed=%v %+v, want denial %q", resp.Allowed, resp.Result, tc.want)
					}
					continue
				}
				if !resp.Allowed || len(resp.Patch) == 0 {
					t.Fatalf("not injected: %+v", resp.Result)
				}
				if !strings.Contains(string(resp.Patch), `pathRules`) || !strings.Contains(string(resp.Patch), `secret/*`) {
					t.Errorf("the agent config in the patch carries no path rules: %s", resp.Patch)
				}
			}
			if got := decisions(t, reg, tc.metric[0], tc.metric[1]); got != 2 {
				t.Errorf("vault_injector_policy_decisions_total{rule=%q,outcome=%q} = %v, want 2", tc.metric[0], tc.metric[1], got)
			}
		})
	}
	// The memoised request is shared: deciding under a policy must not change it for a
	// webhook without one.
	m := webhooktest.Mutator()
	m.Policy = webhook.StaticPolicy{P: p}
	_ = m.Mutate(podAs("web", "r"), "shop")
	m.Policy = nil
	res := m.Mutate(podAs("web", "r"), "shop")
	if res.Outcome != webhook.Injected {
		t.Fatalf("without a policy: %v %v", res.Outcome, res.Err)
	}
	b, err := json.Marshal(res.Patch)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "pathRules") {
		t.Fatalf("a request decided without a policy carries path rules: %s", b)
	}
}

// decisions reads vault_injector_policy_decisions_total{rule, outcome}.
func decisions(t *testing.T, reg *prometheus.Registry, rule, outcome string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "vault_injector_policy_decisions_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["rule"] == rule && l["outcome"] == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// A pod that arrives already injected is held to the policy too: the webhook's own injection
// re-admitted (what reinvocation sends) passes; the same pod moved to another namespace, or
// with its path globs widened, is denied.
func TestAlreadyInjectedPodsHeldToPolicy(t *testing.T) {
	p, err := policy.Parse([]byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	m := webhooktest.Mutator()
	m.Policy = webhook.StaticPolicy{P: p}
	raw := podAs("web", "r")
	res := m.Mutate(raw, "shop")
	if res.Outcome != webhook.Injected {
		t.Fatalf("first admission: %v %v", res.Outcome, res.Err)
	}
	injectedPod, err := inject.Apply(raw, res.Patch, "")
	if err != nil {
		t.Fatal(err)
	}
	widened := strings.Replace(string(injectedPod), `secret/*`, `**`, 1)
	if widened == string(injectedPod) {
		t.Fatal("no path glob in the injected pod to widen")
	}
	for _, tc := range []struct {
		name, ns, pod string
		want          string // empty: skipped as already injected
	}{
		{"re-admission", "shop", string(injectedPod), ""},
		{"other namespace", "payments", string(injectedPod), "no policy rule matches this namespace and service account"},
		{"widened path globs", "shop", widened, "policy: the pod's agent config carries path rules the policy would not write"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := m.Mutate([]byte(tc.pod), tc.ns)
			if tc.want == "" {
				if res.Outcome != webhook.Skipped || res.Reason != webhook.ReasonAlreadyInjected {
					t.Fatalf("got %v/%s %v, want skipped as already injected", res.Outcome, res.Reason, res.Err)
				}
				return
			}
			if res.Outcome != webhook.Denied || !strings.Contains(res.Err.Error(), tc.want) {
				t.Fatalf("got %v %v, want a denial containing %q", res.Outcome, res.Err, tc.want)
			}
		})
	}
}
