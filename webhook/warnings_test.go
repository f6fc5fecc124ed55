package webhook_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/vault-injector/vault-injector/patch"
	"github.com/vault-injector/vault-injector/webhook"
	"github.com/vault-injector/vault-injector/webhook/webhooktest"
)

// Pods that are injected but will not behave as their author expects get a warning, which
// kubectl prints; the pod is still admitted.
func TestWarnings(t *testing.T) {
	const notify = `"vault-injector.io/role":"app","vault-injector.io/secret-db":"database/creds/app","vault-injector.io/notify-process":"app"`
	const plain = `"vault-injector.io/role":"app","vault-injector.io/secret-db":"database/creds/app"`
	// shared is a pod with a shared process namespace; podSC goes before its containers.
	shared := func(podSC, containers string) string {
		return `{"metadata":{"name":"p","annotations":{` + notify + `}},"spec":{"shareProcessNamespace":true,` + podSC + `"containers":[` + containers + `]}}`
	}
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
		// notify-process signals need the agent's UID (65532 here; all capabilities dropped).
		{"notify, container runs as root", patch.StyleNative,
			shared(``, `{"name":"app","securityContext":{"runAsUser":0}}`),
			`the agent runs as UID 65532 with all capabilities dropped, so it can signal only processes of UID 65532, but container "app" runs as UID 0`},
		{"notify, pod runs as another user", patch.StyleNative,
			shared(`"securityContext":{"runAsUser":1000},`, `{"name":"app"}`), `container "app" runs as UID 1000`},
		{"notify, container overrides the pod's user with the agent's", patch.StyleNative,
			shared(`"securityContext":{"runAsUser":1000},`, `{"name":"app","securityContext":{"runAsUser":65532}}`), ""},
		{"notify, everything runs as the agent's user", patch.StyleNative,
			shared(`"securityContext":{"runAsUser":65532},`, `{"name":"app"},{"name":"web"}`), ""},
		{"notify, spec before metadata", patch.StyleNative,
			`{"spec":{"shareProcessNamespace":true,"containers":[{"name":"app","securityContext":{"runAsUser":0}}]},"metadata":{"name":"p","annotations":{` + notify + `}}}`,
			`container "app" runs as UID 0`},
		{"notify, only the selected containers count", patch.StyleNative,
			`{"metadata":{"name":"p","annotations":{` + notify + `,"vault-injector.io/containers":"app"}},"spec":{"shareProcessNamespace":true,"containers":[{"name":"app","securityContext":{"runAsUser":65532}},{"name":"proxy","securityContext":{"runAsUser":0}}]}}`, ""},
		{"classic sidecar in a Job", patch.StyleClassic,
			`{"metadata":{"name":"p","ownerReferences":[{"kind":"Job","name":"j"}],"annotations":{` + plain + `}},"spec":{"containers":[{"name":"app"}]}}`,
			"the Job never completes"},
		{"native sidecar in a Job", patch.StyleNative,
			`{"metadata":{"name":"p","ownerReferences":[{"kind":"Job","name":"j"}],"annotations":{` + plain + `}},"spec":{"containers":[{"name":"app"}]}}`, ""},
		{"leased env variable without restart", patch.StyleNative,
			`{"metadata":{"name":"p","annotations":{"vault-injector.io/role":"app","vault-injector.io/env-PW":"database/creds/app#password","vault-injector.io/env-K":"kv/app#k"}},"spec":{"containers":[{"name":"app"}]}}`,
			"PW look leased (dynamic credentials or certificates): an environment variable cannot change in a running process"},
		{"leased env variable in a template", patch.StyleNative,
			`{"metadata":{"name":"p","annotations":{"vault-injector.io/role":"app","vault-injector.io/env-CERT":"{{ with secret \"pki/issue/web\" \"common_name=a\" }}{{ .Data.certificate }}{{ end }}"}},"spec":{"containers":[{"name":"app"}]}}`,
			"CERT look leased"},
		{"leased env variable with restart", patch.StyleNative,
			`{"metadata":{"name":"p","annotations":{"vault-injector.io/role":"app","vault-injector.io/env-PW":"database/creds/app#password","vault-injector.io/env-on-change":"restart"}},"spec":{"containers":[{"name":"app"}]}}`, ""},
		{"KV env variable", patch.StyleNative,
			`{"metadata":{"name":"p","annotations":{"vault-injector.io/role":"app","vault-injector.io/env-K":"secret/data/creds#k"}},"spec":{"containers":[{"name":"app"}]}}`, ""},
		{"classic sidecar in a ReplicaSet", patch.StyleClassic,
			`{"metadata":{"name":"p","ownerReferences":[{"kind":"ReplicaSet","name":"r"}],"annotations":{` + plain + `}},"spec":{"containers":[{"name":"app"}]}}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := webhooktest.Mutator()
			m.Settings.Style = tc.style
			checkMutateWarnings(t, m, tc.pod, tc.want)
		})
	}
}

// With --agent-uid=auto our containers carry no runAsUser: the agent runs as the pod's
// runAsUser when it sets one; else the platform picks (OpenShift: one UID for every container
// without its own) or the image's USER does, which admission cannot see: no warning then.
func TestWarningsAutoUID(t *testing.T) {
	const notify = `"vault-injector.io/role":"app","vault-injector.io/secret-db":"database/creds/app","vault-injector.io/notify-process":"app"`
	shared := func(podSC, containers string) string {
		return `{"metadata":{"name":"p","annotations":{` + notify + `}},"spec":{"shareProcessNamespace":true,` + podSC + `"containers":[` + containers + `]}}`
	}
	for _, tc := range []struct {
		name, pod, want string
	}{
		{"container runs as another user than the pod", shared(`"securityContext":{"runAsUser":1000},`, `{"name":"app","securityContext":{"runAsUser":0}}`),
			`the agent runs as UID 1000 with all capabilities dropped, so it can signal only processes of UID 1000, but container "app" runs as UID 0`},
		{"everything runs as the pod's user", shared(`"securityContext":{"runAsUser":1000},`, `{"name":"app"}`), ""},
		{"the pod names no user", shared(``, `{"name":"app","securityContext":{"runAsUser":1000}}`), ""},
		{"the agent's default UID means nothing here", shared(``, `{"name":"app","securityContext":{"runAsUser":65532}}`), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := webhooktest.Mutator()
			m.Settings.PlatformUID = true
			checkMutateWarnings(t, m, tc.pod, tc.want)
		})
	}
}

// checkMutateWarnings checks the warnings of both entry points: Mutate and the handler, which
// decodes the pod its own way and must see the same.
func checkMutateWarnings(t *testing.T, m *webhook.Mutator, pod, want string) {
	t.Helper()
	res := m.Mutate([]byte(pod), "shop")
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	checkWarnings(t, "Mutate", res.Warnings, want)
	h := (&webhook.Server{Handler: &webhook.Handler{Mutator: m, Log: slog.New(slog.DiscardHandler)}, Log: slog.New(slog.DiscardHandler)}).Router()
	checkWarnings(t, "/mutate", webhooktest.Review(t, h, "shop", []byte(pod)).Warnings, want)
}

func checkWarnings(t *testing.T, path string, got []string, want string) {
	t.Helper()
	switch {
	case want == "" && len(got) > 0:
		t.Errorf("%s: unexpected warnings %q", path, got)
	case want != "" && (len(got) != 1 || !strings.Contains(got[0], want)):
		t.Errorf("%s: warnings %q, want one containing %q", path, got, want)
	}
}
