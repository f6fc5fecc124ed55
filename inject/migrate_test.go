package inject_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/vault-injector/vault-injector/agentconfig"
	"github.com/vault-injector/vault-injector/inject"
	"github.com/vault-injector/vault-injector/webhook/webhooktest"
)

// A manifest written for HashiCorp's injector, once migrated, injects without
// --accept-vault-annotations exactly as the original does with it: same agent config, same
// files, same containers. Nothing of that injector's prefix is left.
func TestMigrateMatchesAcceptedAnnotations(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(goldenDir, "vault-annotations.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var migrated bytes.Buffer
	if err := inject.Migrate(bytes.NewReader(src), &migrated); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(migrated.String(), "vault.hashicorp.com/") {
		t.Fatalf("migrated manifest still carries the other prefix:\n%s", migrated.String())
	}
	accepting := webhooktest.Mutator()
	accepting.AcceptVaultAnnotations = true
	var want, got bytes.Buffer
	if err := inject.Stream(bytes.NewReader(src), &want, accepting, ""); err != nil {
		t.Fatal(err)
	}
	if err := inject.Stream(&migrated, &got, webhooktest.Mutator(), ""); err != nil {
		t.Fatal(err)
	}
	if w, g := withoutUserAnnotations(t, want.Bytes()), withoutUserAnnotations(t, got.Bytes()); !reflect.DeepEqual(w, g) {
		t.Errorf("injected after migrate:\n%s\nwant (injected with --accept-vault-annotations):\n%s", got.String(), want.String())
	}
}

// withoutUserAnnotations decodes an injected Deployment and drops the pod template's
// annotations that the user wrote (the other prefix before migrating, ours after), keeping
// what the injection wrote: the two outputs must agree on everything else.
func withoutUserAnnotations(t *testing.T, doc []byte) map[string]any {
	t.Helper()
	var obj map[string]any
	if err := yaml.Unmarshal(doc, &obj); err != nil {
		t.Fatal(err)
	}
	ann := obj["spec"].(map[string]any)["template"].(map[string]any)["metadata"].(map[string]any)["annotations"].(map[string]any)
	for k := range ann {
		if k != agentconfig.AnnotationStatus && k != agentconfig.AnnotationAgentConfig {
			delete(ann, k)
		}
	}
	if len(ann) != 2 {
		t.Fatalf("the output is not injected: %s", doc)
	}
	return obj
}

// Objects whose annotations cannot be mapped are written unchanged and named.
func TestMigrateNamesWhatItCannotMap(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(goldenDir, "vault-annotations-refused.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = inject.Migrate(bytes.NewReader(src), &out)
	var um *inject.UnmappedError
	if !errors.As(err, &um) || !strings.Contains(err.Error(), "agent-inject-command-config") {
		t.Fatalf("error %v; want one naming agent-inject-command-config", err)
	}
	if !bytes.Equal(out.Bytes(), src) {
		t.Errorf("the unmappable object was changed:\n%s", out.String())
	}
}
