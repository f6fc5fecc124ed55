package inject_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/vault-injector/vault-injector/agentconfig"
	"github.com/vault-injector/vault-injector/inject"
	"github.com/vault-injector/vault-injector/patch"
	"github.com/vault-injector/vault-injector/webhook"
	"github.com/vault-injector/vault-injector/webhook/webhooktest"
)

var update = flag.Bool("update", false, "rewrite testdata/inject/*.injected.yaml and *.err from the current output")

const goldenDir = "../testdata/inject"

// goldenHeaders are the "# golden: <flag>=<value>" lines a case may carry, each with the
// setting it stands for (the webhook flag of the same name).
var goldenHeaders = []struct {
	header string
	apply  func(*webhook.Mutator)
}{
	{"# golden: sidecar-style=classic", func(m *webhook.Mutator) { m.Settings.Style = patch.StyleClassic }},
	{"# golden: agent-uid=auto", func(m *webhook.Mutator) { m.Settings.PlatformUID = true }},
	{"# golden: accept-vault-annotations=true", func(m *webhook.Mutator) { m.AcceptVaultAnnotations = true }},
	{"# golden: env-style=exec", func(m *webhook.Mutator) { m.Settings.EnvStyle = agentconfig.EnvStyleExec }},
}

// mutatorFor returns the test settings, with the case's golden headers applied.
func mutatorFor(doc []byte) *webhook.Mutator {
	m := webhooktest.Mutator()
	for _, h := range goldenHeaders {
		if bytes.Contains(doc, []byte(h.header)) {
			h.apply(m)
		}
	}
	return m
}

// TestGolden checks every case through both paths: offline (inject.Stream) and the webhook
// (POST /mutate, then the returned JSON patch applied to the raw pod with a JSON-patch
// library). Both must produce the golden file.
func TestGolden(t *testing.T) {
	cases, err := filepath.Glob(filepath.Join(goldenDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, in := range cases {
		if strings.HasSuffix(in, ".injected.yaml") {
			continue
		}
		n++
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			m := mutatorFor(src)
			var out bytes.Buffer
			err = inject.Stream(bytes.NewReader(src), &out, m, "")
			outFile := strings.TrimSuffix(in, ".yaml") + ".injected.yaml"
			errFile := strings.TrimSuffix(in, ".yaml") + ".err"
			var denied *inject.DeniedError
			switch {
			case errors.As(err, &denied):
				if out.Len() != 0 {
					t.Errorf("denied input still wrote %d bytes", out.Len())
				}
				compareGolden(t, errFile, []byte(err.Error()+"\n"))
			case err != nil:
				t.Fatalf("inject: %v", err)
			default:
				compareGolden(t, outFile, out.Bytes())
			}
			if isPod(t, src) {
				checkWebhookPath(t, m, src, outFile, errFile, denied != nil)
			}
		})
	}
	if n < 10 {
		t.Fatalf("found only %d golden cases in %s", n, goldenDir)
	}
}

func compareGolden(t *testing.T, file string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run: go test ./inject -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (run with -update and review the diff):\n--- got\n%s", file, got)
	}
}

func isPod(t *testing.T, src []byte) bool {
	var obj struct{ Kind string }
	if err := yaml.Unmarshal(src, &obj); err != nil {
		t.Fatal(err)
	}
	return obj.Kind == "Pod"
}

// checkWebhookPath sends the pod as an AdmissionReview and compares the answer with the golden
// files written by the offline path.
func checkWebhookPath(t *testing.T, m *webhook.Mutator, src []byte, outFile, errFile string, deniedOffline bool) {
	t.Helper()
	podJSON, err := yaml.YAMLToJSON(src)
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Metadata struct{ Namespace string }
	}
	_ = json.Unmarshal(podJSON, &meta)
	ns := meta.Metadata.Namespace
	if ns == "" {
		ns = "default"
	}
	resp := webhooktest.Review(t, handler(m), ns, podJSON)
	if deniedOffline {
		want, err := os.ReadFile(errFile)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Allowed {
			t.Fatalf("webhook allowed a pod the offline path denies")
		}
		// The offline message names the document and object; the webhook names the pod. Both
		// carry the same reason.
		reason := string(want)[strings.LastIndex(string(want), ": ")+2:]
		if !strings.Contains(resp.Result.Message+"\n", reason) || resp.Result.Code != http.StatusForbidden {
			t.Errorf("webhook denial %d %q does not carry %q", resp.Result.Code, resp.Result.Message, reason)
		}
		return
	}
	if !resp.Allowed {
		t.Fatalf("webhook denied: %s", resp.Result.Message)
	}
	if len(resp.Patch) == 0 {
		// Untouched: the golden output is the input itself.
		want, _ := os.ReadFile(outFile)
		if !bytes.Equal(want, src) {
			t.Errorf("webhook returned no patch, but the offline path changed the pod")
		}
		return
	}
	if resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("patch type %v, want JSONPatch", resp.PatchType)
	}
	p, err := jsonpatch.DecodePatch(resp.Patch)
	if err != nil {
		t.Fatalf("decode returned patch: %v", err)
	}
	patched, err := p.Apply(podJSON)
	if err != nil {
		t.Fatalf("returned patch does not apply to the raw pod: %v", err)
	}
	var pod corev1.Pod
	if err := json.Unmarshal(patched, &pod); err != nil {
		t.Fatalf("patched pod does not decode: %v", err)
	}
	got, err := yaml.JSONToYAML(patched)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(outFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("webhook path differs from %s:\n%s", outFile, got)
	}

	// A second admission of the injected pod yields no patch.
	again := webhooktest.Review(t, handler(m), ns, patched)
	if !again.Allowed || len(again.Patch) != 0 {
		t.Errorf("re-admitting the injected pod: allowed=%v patch=%s", again.Allowed, again.Patch)
	}
}

func handler(m *webhook.Mutator) http.Handler {
	return (&webhook.Server{Handler: &webhook.Handler{Mutator: m, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, Log: slog.Default()}).Router()
}

func TestStreamPassesThroughOtherKinds(t *testing.T) {
	in := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  annotations:\n    vault-injector.io/role: \"\"\ndata:\n  a: \"1\"\n"
	var out bytes.Buffer
	if err := inject.Stream(strings.NewReader(in), &out, webhooktest.Mutator(), ""); err != nil {
		t.Fatal(err)
	}
	if out.String() != in {
		t.Errorf("ConfigMap changed:\n%s", out.String())
	}
}

func TestStreamNamespaceFlag(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(goldenDir, "basic-pod.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := inject.Stream(bytes.NewReader(src), &out, webhooktest.Mutator(), "kube-system"); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), src) {
		t.Errorf("-n kube-system must leave the pod untouched")
	}
}

func TestStreamBadYAML(t *testing.T) {
	for _, in := range []string{"kind: Pod\nspec: [\n", "kind: Deployment\nspec: 3\n", "- a\n- b\n"} {
		err := inject.Stream(strings.NewReader(in), io.Discard, webhooktest.Mutator(), "")
		if err == nil || !strings.HasPrefix(err.Error(), "document 1: ") {
			t.Errorf("%q: got %v, want an error naming document 1", in, err)
		}
	}
}

// The offline preview prints the warnings the webhook would send; a Job's pod template is
// judged as a pod a Job owns.
func TestStreamWarnsLikeTheWebhook(t *testing.T) {
	m := webhooktest.Mutator()
	m.Settings.Style = patch.StyleClassic
	job := `apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
spec:
  template:
    metadata:
      annotations: {vault-injector.io/role: app, vault-injector.io/secret-db: database/creds/app}
    spec:
      restartPolicy: Never
      containers: [{name: migrate, image: app}]
`
	var out, warn bytes.Buffer
	if err := inject.StreamWarn(strings.NewReader(job), &out, &warn, m, ""); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(warn.String(), "Warning: document 1: vault-injector: the classic sidecar keeps running after the Job's containers exit") {
		t.Errorf("warnings: %q", warn.String())
	}
	if !strings.Contains(out.String(), "vault-injector-agent") {
		t.Error("the Job was not injected")
	}
}

// Every manifest in deploy/examples is accepted by the webhook and gets injected: the examples
// are what users copy, so they must stay valid as annotations evolve.
func TestExamplesInject(t *testing.T) {
	files, _ := filepath.Glob("../deploy/examples/*/*.yaml")
	if len(files) == 0 {
		t.Fatal("no examples found")
	}
	injected := 0
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var out, warn bytes.Buffer
		if err := inject.StreamWarn(bytes.NewReader(src), &out, &warn, webhooktest.Mutator(), ""); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if warn.Len() > 0 {
			t.Errorf("%s: %s", f, warn.String())
		}
		if strings.Contains(out.String(), "vault-injector-agent") || strings.Contains(out.String(), "vault-injector-init") {
			injected++
		}
	}
	if injected < 5 {
		t.Errorf("%d example files injected, want one per example (5)", injected)
	}
}
