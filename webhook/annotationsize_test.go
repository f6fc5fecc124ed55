package webhook_test

import (
	"encoding/json"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"

	"github.com/vault-injector/vault-injector/patch"
	"github.com/vault-injector/vault-injector/webhook"
	"github.com/vault-injector/vault-injector/webhook/webhooktest"
)

// templatePod asks for one inline template of n bytes, plus extra annotations (JSON members).
func templatePod(n int, extra string) []byte {
	return []byte(`{"metadata":{"name":"big","annotations":{` + extra + `"vault-injector.io/role":"app","vault-injector.io/template-big":"` +
		strings.Repeat("a", n) + `"}},"spec":{"containers":[{"name":"app"}]}}`)
}

// injectedAnnotationBytes applies the patch and counts the pod's annotations as the API
// server does (apimachinery's ValidateAnnotationsSize).
func injectedAnnotationBytes(t *testing.T, raw []byte, ops []patch.Operation) int {
	t.Helper()
	b, err := patch.Marshal(ops)
	if err != nil {
		t.Fatal(err)
	}
	p, err := jsonpatch.DecodePatch(b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Apply(raw)
	if err != nil {
		t.Fatal(err)
	}
	var pod struct {
		Metadata struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(out, &pod); err != nil {
		t.Fatal(err)
	}
	n := 0
	for k, v := range pod.Metadata.Annotations {
		n += len(k) + len(v)
	}
	return n
}

// A pod the injection would push past the API server's 256 KiB annotation limit is denied by
// us, naming the limit; one that stays under it is admitted. The boundary is found from what
// the patch really adds: the agent config repeats the template.
func TestAnnotationSizeLimit(t *testing.T) {
	m := webhooktest.Mutator()
	// The patched pod's annotations grow by two bytes per template byte (the template
	// annotation and its copy in the agent config), plus a fixed part.
	small := templatePod(1, "")
	res := m.Mutate(small, "shop")
	if res.Outcome != webhook.Injected {
		t.Fatalf("small template: %v %v", res.Outcome, res.Err)
	}
	fixed := injectedAnnotationBytes(t, small, res.Patch) - 2
	fits := (webhook.MaxAnnotationBytes - fixed) / 2
	for _, tc := range []struct {
		name    string
		pod     []byte
		allowed bool
		msg     string
	}{
		{"largest template that fits", templatePod(fits, ""), true, ""},
		{"one byte more", templatePod(fits+1, ""), false, "over the API server's limit of 262144 bytes (256 KiB"},
		{"150 KiB template (the issue's case)", templatePod(150<<10, ""), false, "injection adds"},
		{"own annotations over the limit already", templatePod(300<<10, ""), false, "the pod's annotations total"},
		{"other annotations leave no room", templatePod(1<<10, `"other.example/blob":"`+strings.Repeat("b", 255<<10)+`",`), false, "over the API server's limit"},
		{"other annotations with room", templatePod(1<<10, `"other.example/blob":"`+strings.Repeat("b", 200<<10)+`",`), true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := m.Mutate(tc.pod, "shop")
			if tc.allowed {
				if res.Outcome != webhook.Injected {
					t.Fatalf("outcome %s (%v), want injected", res.Outcome, res.Err)
				}
				if n := injectedAnnotationBytes(t, tc.pod, res.Patch); n > webhook.MaxAnnotationBytes {
					t.Fatalf("admitted, but the injected pod's annotations total %d bytes", n)
				}
				return
			}
			if res.Outcome != webhook.Denied || res.Reason != webhook.ReasonAnnotationsTooLarge || !strings.Contains(res.Err.Error(), tc.msg) {
				t.Fatalf("outcome %s reason %s (%v), want denied %s containing %q", res.Outcome, res.Reason, res.Err, webhook.ReasonAnnotationsTooLarge, tc.msg)
			}
		})
	}
}

// Through /mutate the denial is a 403 whose message names the limit.
func TestAnnotationSizeDenialMessage(t *testing.T) {
	h, _ := newRouter(t)
	resp := webhooktest.Review(t, h, "shop", templatePod(150<<10, ""))
	if resp.Allowed || resp.Result == nil || resp.Result.Code != 403 ||
		!strings.Contains(resp.Result.Message, "256 KiB") || !strings.Contains(resp.Result.Message, "templates-configmap") {
		t.Fatalf("want a 403 naming the 256 KiB limit and the way out, got allowed=%v %+v", resp.Allowed, resp.Result)
	}
}
