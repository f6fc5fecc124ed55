package deploy_test

import (
	"strings"
	"testing"

	"github.com/vault-injector/vault-injector/test/cluster"
)

// The chart installs from the oldest minor the e2e suite runs on (Makefile KUBERNETES_OLDEST,
// kubeVersion here) and refuses an older cluster by its kubeVersion.
func TestChartKubeVersion(t *testing.T) {
	for _, tc := range []struct {
		version string
		wantErr string
	}{
		{version: kubeVersion},
		{version: "1.30.14"},
		{version: "v" + cluster.DefaultKubernetesVersion},
		{version: "1.29.15", wantErr: "chart requires kubeVersion: >=1.30.0-0 which is incompatible with Kubernetes v1.29.15"},
		{version: "1.23.0", wantErr: "chart requires kubeVersion: >=1.30.0-0"},
	} {
		t.Run(tc.version, func(t *testing.T) {
			args := []string{"template", "vault-injector", chart, "--namespace", "vault-injector", "--kube-version", tc.version}
			out, errOut, err := helm(t, args...)
			if tc.wantErr == "" {
				if err != nil || !strings.Contains(out, "kind: MutatingWebhookConfiguration") {
					t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, errOut)
				}
				return
			}
			if err == nil || !strings.Contains(errOut, tc.wantErr) {
				t.Fatalf("helm %s: err %v, stderr %q; want a refusal containing %q", strings.Join(args, " "), err, errOut, tc.wantErr)
			}
		})
	}
}
