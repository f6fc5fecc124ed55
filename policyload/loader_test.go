package policyload

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func policyDoc(rule string) string {
	return `apiVersion: vault-injector.io/v1alpha1
kind: InjectionPolicy
rules:
- name: ` + rule + `
  match: {namespaces: [shop]}
  allow: {roles: [r], authPaths: [auth/kubernetes], addresses: [https://v], paths: {read: [secret/*]}}
`
}

// syncBuffer is a log sink the informer's goroutine writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ruleInForce(l *Loader) string {
	p, ok := l.Policy()
	if !ok {
		return ""
	}
	return p.Rules[0].Name
}

// The loader follows the ConfigMap, refuses an invalid version keeping the last good one, and
// ignores other ConfigMaps of the namespace.
func TestLoaderFollowsConfigMap(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	client := fake.NewClientset()
	var logs syncBuffer
	reg := prometheus.NewRegistry()
	l := New(Options{Namespace: "vi", Name: "policy", Key: "policy.yaml"}, slog.New(slog.NewTextHandler(&logs, nil)), reg)
	l.Start(ctx, configMapsLW(client, "vi"), time.Second)
	if _, ok := l.Policy(); ok {
		t.Fatal("a policy is in force before any ConfigMap exists")
	}
	cms := client.CoreV1().ConfigMaps("vi")
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "policy", Namespace: "vi", ResourceVersion: "1"}, Data: map[string]string{"policy.yaml": policyDoc("first")}}
	if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first policy", func() bool { return ruleInForce(l) == "first" })

	for i, step := range []struct {
		data, want string
	}{
		{"rules: [", "first"},
		{policyDoc("Bad Name"), "first"},
		{policyDoc("second"), "second"},
	} {
		cm.Data["policy.yaml"], cm.ResourceVersion = step.data, string(rune('2'+i))
		if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		want := float64(i + 1)
		if step.want == "second" {
			waitFor(t, "the second policy", func() bool { return ruleInForce(l) == "second" })
			continue
		}
		waitFor(t, "the refusal to be counted", func() bool {
			return testutil.ToFloat64(l.reloads.WithLabelValues("refused")) == want
		})
		if got := ruleInForce(l); got != step.want {
			t.Fatalf("after an invalid update the rule in force is %q, want %q", got, step.want)
		}
	}
	if !strings.Contains(logs.String(), "policy refused: the last good policy stays in force") {
		t.Errorf("no log line for the refused policy:\n%s", logs.String())
	}
	other := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "vi"}, Data: map[string]string{"policy.yaml": policyDoc("other")}}
	if _, err := cms.Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if got := ruleInForce(l); got != "second" {
		t.Fatalf("another ConfigMap changed the policy to %q", got)
	}
	if got := testutil.ToFloat64(l.inForce); got != 1 {
		t.Errorf("vault_injector_policy_loaded = %v, want 1", got)
	}
}

func TestLoaderRefusesSelectorsWithoutNamespaceAccess(t *testing.T) {
	doc := strings.Replace(policyDoc("sel"), "match: {namespaces: [shop]}", "match: {namespaceSelector: {matchLabels: {team: a}}}", 1)
	for _, tc := range []struct {
		labels bool
		want   string
	}{{false, ""}, {true, "sel"}} {
		l := New(Options{Namespace: "vi", Name: "policy", Key: "policy.yaml", NamespaceLabels: tc.labels}, slog.New(slog.DiscardHandler), nil)
		l.Apply(&corev1.ConfigMap{Data: map[string]string{"policy.yaml": doc}})
		if got := ruleInForce(l); got != tc.want {
			t.Errorf("NamespaceLabels=%v: rule in force %q, want %q", tc.labels, got, tc.want)
		}
	}
	l := New(Options{Key: "policy.yaml"}, slog.New(slog.DiscardHandler), nil)
	if _, err := l.parse(&corev1.ConfigMap{Data: map[string]string{"other": "x"}}); err == nil || !strings.Contains(err.Error(), `ConfigMap has no key "policy.yaml"`) {
		t.Errorf("missing key: %v", err)
	}
}
