package webhook_test

import (
	"strings"
	"testing"

	"github.com/vault-injector/vault-injector/patch"
	"github.com/vault-injector/vault-injector/webhook/webhooktest"
)

// Pods that are injected but will not behave as their author expects get a warning, which
// kubectl prints; the pod is still admitted.
func TestWarnings(t *testing.T) {
	const notify = `"vault-injector.io/role":"app","vault-injector.io/secret-db":"database/creds/app","vault-injector.io/notify-process":"app"`
	const plain = `"vault-injector.io/role":"app","vault-injector.io/secret-db":"database/creds/app"`
	for _, tc := range []struct {
		name  string
		style patch.Style
		pod   string
		want  string // substring of the only warning; empty: no warning
	}{
		{"notify without a shared process namespace", patch.StyleNative,
			`{"metadata":{"name":"p","annotations":{` + notify + `}},"spec":{"containers":[{"name":"app"}]}}`,
			"notify-process=app has no effect: the pod does not set spec.shareProcessNamespace: true"},
		{"notify with a shared process namespace", patch.StyleNative,
			`{"metadata":{"name":"p","annotations":{` + notify + `}},"spec":{"shareProcessNamespace":true,"containers":[{"name":"app"}]}}`, ""},
		{"classic sidecar in a Job", patch.StyleClassic,
			`{"metadata":{"name":"p","ownerReferences":[{"kind":"Job","name":"j"}],"annotations":{` + plain + `}},"spec":{"containers":[{"name":"app"}]}}`,
			"the Job never completes"},
		{"native sidecar in a Job", patch.StyleNative,
			`{"metadata":{"name":"p","ownerReferences":[{"kind":"Job","name":"j"}],"annotations":{` + plain + `}},"spec":{"containers":[{"name":"app"}]}}`, ""},
		{"classic sidecar in a ReplicaSet", patch.StyleClassic,
			`{"metadata":{"name":"p","ownerReferences":[{"kind":"ReplicaSet","name":"r"}],"annotations":{` + plain + `}},"spec":{"containers":[{"name":"app"}]}}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := webhooktest.Mutator()
			m.Settings.Style = tc.style
			res := m.Mutate([]byte(tc.pod), "shop")
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			switch {
			case tc.want == "" && len(res.Warnings) > 0:
				t.Errorf("unexpected warnings %q", res.Warnings)
			case tc.want != "" && (len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], tc.want)):
				t.Errorf("warnings %q, want one containing %q", res.Warnings, tc.want)
			}
		})
	}
}
