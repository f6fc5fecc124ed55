// Package deploy_test checks the install manifests without a cluster: the Helm chart and the
// kustomize overlays render the same objects, and the chart's values schema refuses what the
// chart would silently ignore. helm is the one `make tools` builds; without it the tests fail.
package deploy_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/vault-injector/vault-injector/test/cluster"
)

const (
	helmVersion = "v3.22.0" // test/tools/build.sh
	chart       = "helm/vault-injector"
	// kubeVersion is the oldest the chart and the kustomize base support (preStop sleep,
	// matchConditions; the e2e suite's older minor).
	kubeVersion = "1.30.0"
)

// helm runs the built helm with a private home, so no user configuration leaks in.
func helm(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	bin, err := cluster.Tool("helm-"+helmVersion, "helm")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	home := t.TempDir()
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + home, "HELM_CACHE_HOME=" + home, "HELM_CONFIG_HOME=" + home, "HELM_DATA_HOME=" + home}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// helmTemplate renders the chart as the documented release: "vault-injector" in namespace
// vault-injector.
func helmTemplate(t *testing.T, args ...string) []byte {
	t.Helper()
	full := append([]string{"template", "vault-injector", chart, "--namespace", "vault-injector", "--kube-version", kubeVersion}, args...)
	out, errOut, err := helm(t, full...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(full, " "), err, errOut)
	}
	return []byte(out)
}

func kustomize(t *testing.T, dir string) []byte {
	t.Helper()
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize %s: %v", dir, err)
	}
	out, err := res.AsYaml()
	if err != nil {
		t.Fatalf("kustomize %s: %v", dir, err)
	}
	return out
}

// overlay returns dir, or with components a user's overlay of dir that adds them.
func overlay(t *testing.T, dir string, components []string) string {
	t.Helper()
	if len(components) == 0 {
		return filepath.FromSlash(dir)
	}
	// kustomize refuses absolute paths: name them relative to the temporary overlay.
	mine := t.TempDir()
	rel := func(p string) string {
		a, err := filepath.Abs(filepath.FromSlash(p))
		if err == nil {
			a, err = filepath.Rel(mine, a)
		}
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - " + rel(dir) + "\ncomponents:\n"
	for _, c := range components {
		k += "  - " + rel(c) + "\n"
	}
	if err := os.WriteFile(filepath.Join(mine, "kustomization.yaml"), []byte(k), 0o600); err != nil {
		t.Fatal(err)
	}
	return mine
}

// objects decodes a multi-document rendering into objects keyed by kind/namespace/name.
func objects(t *testing.T, data []byte) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var o map[string]any
		if err := d.Decode(&o); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("decode rendering: %v", err)
		}
		if len(o) == 0 {
			continue
		}
		meta, _ := o["metadata"].(map[string]any)
		ns, _ := meta["namespace"].(string)
		out[fmt.Sprintf("%v/%s/%v", o["kind"], ns, meta["name"])] = o
	}
	return out
}

// What legitimately differs between the two: who manages the objects (Helm's chart label and
// managed-by), and the Namespace, which kustomize creates and Helm leaves to
// --create-namespace.
var (
	managerLabels = []string{"helm.sh/chart", "app.kubernetes.io/managed-by"}
	onlyKustomize = []string{"Namespace//vault-injector"}
)

// normalise drops the manager labels wherever labels are (objects and pod templates).
func normalise(v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, c := range v {
			if labels, ok := c.(map[string]any); ok && k == "labels" {
				for _, l := range managerLabels {
					delete(labels, l)
				}
			}
			normalise(c)
		}
	case []any:
		for _, c := range v {
			normalise(c)
		}
	}
}

// unionKeys is the sorted keys of a and b together.
func unionKeys[V any](a, b map[string]V) []string {
	keys := slices.Collect(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// differences lists the paths where a and b differ, for a readable failure.
func differences(path string, a, b any) []string {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		var out []string
		for _, k := range unionKeys(am, bm) {
			out = append(out, differences(path+"."+k, am[k], bm[k])...)
		}
		return out
	}
	al, aok := a.([]any)
	bl, bok := b.([]any)
	if aok && bok && len(al) == len(bl) {
		var out []string
		for i := range al {
			out = append(out, differences(fmt.Sprintf("%s[%d]", path, i), al[i], bl[i])...)
		}
		return out
	}
	if reflect.DeepEqual(a, b) {
		return nil
	}
	return []string{fmt.Sprintf("%s: chart %v, kustomize %v", path, a, b)}
}

// TestChartMatchesKustomize: the kustomize overlays are documented as the chart's defaults in
// each certificate mode, so both must render the same objects, field for field.
func TestChartMatchesKustomize(t *testing.T) {
	for _, tc := range []struct {
		name, overlay string
		components    []string
		values        []string
	}{
		{"self-managed", "kustomize/overlays/self-signed", nil, nil},
		{"cert-manager", "kustomize/overlays/cert-manager", nil, []string{"--set", "certs.mode=certManager"}},
		{"openshift", "kustomize/overlays/self-signed", []string{"kustomize/components/openshift"}, []string{"--set", "openshift=true"}},
		{"policy", "kustomize/overlays/self-signed", []string{"kustomize/components/policy"},
			[]string{"--set", "policy.enabled=true", "--set-file", "policy.file=kustomize/components/policy/policy.yaml"}},
		{"policy, cert-manager", "kustomize/overlays/cert-manager", []string{"kustomize/components/policy"},
			[]string{"--set", "certs.mode=certManager", "--set", "policy.enabled=true", "--set-file", "policy.file=kustomize/components/policy/policy.yaml"}},
		{"policy with namespace labels", "kustomize/overlays/self-signed", []string{"kustomize/components/policy", "kustomize/components/policy-namespace-labels"},
			[]string{"--set", "policy.enabled=true", "--set", "policy.namespaceLabels=true", "--set-file", "policy.file=kustomize/components/policy/policy.yaml"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fromHelm := objects(t, helmTemplate(t, tc.values...))
			fromKustomize := objects(t, kustomize(t, overlay(t, tc.overlay, tc.components)))
			for _, k := range onlyKustomize {
				if _, ok := fromKustomize[k]; !ok {
					t.Errorf("kustomize no longer renders %s: update onlyKustomize", k)
				}
				delete(fromKustomize, k)
			}
			for _, k := range unionKeys(fromHelm, fromKustomize) {
				h, kz := fromHelm[k], fromKustomize[k]
				switch {
				case h == nil:
					t.Errorf("%s: only kustomize renders it", k)
				case kz == nil:
					t.Errorf("%s: only the chart renders it", k)
				default:
					normalise(h)
					normalise(kz)
					for _, d := range differences(k, h, kz) {
						t.Error(d)
					}
				}
			}
		})
	}
}
