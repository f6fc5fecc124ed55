package testkit

import (
	"bytes"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/vault-injector/vault-injector/test/cluster"
)

// HelmVersion is the helm that test/tools/build.sh builds.
const HelmVersion = "v3.22.0"

// HelmTemplate renders the chart as release "vault-injector" in namespace, for the
// Kubernetes version of the test cluster.
func HelmTemplate(t *testing.T, chart, namespace string, args ...string) []byte {
	t.Helper()
	helm, err := cluster.Tool("helm-"+HelmVersion, "helm")
	if err != nil {
		t.Fatal(err)
	}
	version, err := cluster.KubernetesVersion()
	if err != nil {
		t.Fatal(err)
	}
	full := append([]string{"template", "vault-injector", chart, "--namespace", namespace, "--kube-version", strings.TrimPrefix(version.String(), "v")}, args...)
	cmd := exec.Command(helm, full...)
	// No helm settings of the developer's leak in.
	home := t.TempDir()
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + home, "HELM_CACHE_HOME=" + home, "HELM_CONFIG_HOME=" + home, "HELM_DATA_HOME=" + home}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(full, " "), err, stderr.String())
	}
	return out
}

// DecodeDocs splits rendered manifests into objects (empty documents dropped).
func DecodeDocs(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("decode rendered manifests: %v", err)
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
	if len(out) == 0 {
		t.Fatal("rendering produced no objects")
	}
	return out
}
