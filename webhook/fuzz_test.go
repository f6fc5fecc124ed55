package webhook_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	corev1 "k8s.io/api/core/v1"

	"github.com/vault-injector/vault-injector/webhook"
	"github.com/vault-injector/vault-injector/webhook/webhooktest"
)

var fuzzSeeds = []string{
	annotatedPod,
	`{"metadata":{"annotations":{"vault-injector.io/role":"r","vault-injector.io/templates-configmap":"t","vault-injector.io/mode":"init"}},"spec":{"initContainers":[{"name":"i"}],"volumes":[{"name":"v"}],"containers":[{"name":"a","volumeMounts":[{"name":"v","mountPath":"/v"}],"env":[{"name":"X","value":"1"}]}]}}`,
	`{"metadata":{"annotations":{"a~b/c":"1","vault-injector.io/role":"r","vault-injector.io/secret-x":"kv/x","vault-injector.io/file-x":"d/e","vault-injector.io/containers":"a,b"}},"spec":{"containers":[{"name":"a"},{"name":"b","volumeMounts":[]}]}}`,
	`{"spec":{"containers":[{"name":"a"}]}}`,
	`{"metadata":null,"spec":null}`,
	`{"metadata":{"annotations":{"vault-injector.io/role":"r","vault-injector.io/secret-x":"kv/x"}},"spec":{"containers":[{"name":"a","volumeMounts":[{"name":"q","mountPath":"/vault/secrets"}]}]}}`,
	`{"metadata":{"annotations":{"vault-injector.io/role":"r","vault-injector.io/env-A":"db/creds/r#password","vault-injector.io/env-on-change":"restart"}},"spec":{"containers":[{"name":"a","env":[{"name":"B","value":"1"}]}]}}`,
	`{"metadata":{"annotations":{"vault-injector.io/role":"r","vault-injector.io/env-A":"kv/x#k","vault-injector.io/env-style":"exec"}},"spec":{"containers":[{"name":"a","command":["/app"],"args":["-x"]},{"name":"b","command":["sh"]}]}}`,
	// Several identities, jwt, one token per audience.
	`{"metadata":{"annotations":{"vault-injector.io/identity-a-role":"ra","vault-injector.io/identity-a-auth-type":"jwt","vault-injector.io/identity-a-token-audience":"aud-a","vault-injector.io/identity-b-role":"rb","vault-injector.io/identity-b-token-audience":"aud-b","vault-injector.io/secret-x":"kv/x","vault-injector.io/secret-x-identity":"a","vault-injector.io/template-y":"{{ with secret \"kv/y\" }}{{ .Data.v }}{{ end }}","vault-injector.io/template-y-identity":"b"}},"spec":{"containers":[{"name":"a"}]}}`,
	`{"metadata":{"annotations":{"vault-injector.io/role":"r","vault-injector.io/templates-configmap":"t","vault-injector.io/templates-configmap-identity":"p","vault-injector.io/identity-p-role":"rp","vault-injector.io/identity-p-address":"https://v2:8200"}},"spec":{"containers":[{"name":"a"}]}}`,
}

// FuzzMutate: the decision never panics; every patch it produces only adds, applies to the raw
// pod, keeps every original value, and yields a pod that decodes.
func FuzzMutate(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s), "team")
	}
	m := webhooktest.Mutator()
	f.Fuzz(func(t *testing.T, raw []byte, ns string) {
		res := m.Mutate(raw, ns)
		if res.Outcome != webhook.Injected {
			if res.Outcome == webhook.Denied && res.Err == nil {
				t.Fatal("denied without a reason")
			}
			return
		}
		checkAddOnly(t, raw, res)
	})
}

var wrappedCommand = regexp.MustCompile(`^/spec/containers/[0-9]+/command$`)

func checkAddOnly(t *testing.T, raw []byte, res webhook.Result) {
	t.Helper()
	for _, op := range res.Patch {
		// The exec env style wraps an app container's command: the one replacement we make.
		if op.Op != "add" && (op.Op != "replace" || !wrappedCommand.MatchString(op.Path)) {
			t.Fatalf("operation %q at %s: only add is allowed (and replace of a container's command)", op.Op, op.Path)
		}
	}
	ops, _ := json.Marshal(res.Patch)
	p, err := jsonpatch.DecodePatch(ops)
	if err != nil {
		t.Fatalf("decode patch: %v", err)
	}
	out, err := p.Apply(raw)
	if err != nil {
		t.Fatalf("patch does not apply to %s: %v\n%s", raw, err, ops)
	}
	var before, after any
	if err := json.Unmarshal(raw, &before); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out, &after); err != nil {
		t.Fatal(err)
	}
	if !keeps(before, after) {
		t.Fatalf("patch removed or replaced something:\nbefore %s\nafter  %s", raw, out)
	}
	var pod corev1.Pod
	if err := json.Unmarshal(out, &pod); err != nil {
		t.Fatalf("patched pod does not decode: %v", err)
	}
}

// keeps reports whether everything in a is still in b: object keys with kept values, and array
// elements in their order (the patch may insert elements around them).
func keeps(a, b any) bool {
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			return false
		}
		for k, v := range av {
			w, ok := bv[k]
			if !ok || !keeps(v, w) {
				return false
			}
		}
		return true
	case []any:
		bv, ok := b.([]any)
		if !ok {
			return false
		}
		j := 0
		for _, v := range av {
			for j < len(bv) && !keeps(v, bv[j]) {
				j++
			}
			if j == len(bv) {
				return false
			}
			j++
		}
		return true
	case nil:
		// An absent (null) field may become an object or array we add.
		return true
	default:
		return reflect.DeepEqual(a, b)
	}
}

// FuzzHandler: any body gets a 2xx or 4xx answer, never a 500 or a panic.
func FuzzHandler(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(string(webhooktest.ReviewBody("team", []byte(s))))
	}
	f.Add(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"kind":"Pod"},"operation":"CREATE","object":"x"}}`)
	h, _ := newRouter(&testing.T{})
	f.Fuzz(func(t *testing.T, body string) {
		rec := post(h, "application/json", body)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		if rec.Code == http.StatusOK {
			var out map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out["response"] == nil {
				t.Fatalf("200 without a review: %s", rec.Body)
			}
		}
	})
}
