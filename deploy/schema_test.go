package deploy_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValuesSchema: values.schema.json refuses what the chart would otherwise ignore or render
// wrong, with the offending key named, through both `helm lint` and `helm template`; `global`
// (set by umbrella charts for every subchart) still passes.
func TestValuesSchema(t *testing.T) {
	umbrella := filepath.Join(t.TempDir(), "umbrella.yaml")
	if err := os.WriteFile(umbrella, []byte("global:\n  imageRegistry: registry.example\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		values []string
		err    string // in helm's output; empty: valid
	}{
		{"defaults", nil, ""},
		{"unknown top-level key", []string{"--set", "replicas=3"}, "additional properties 'replicas' not allowed"},
		{"global from an umbrella chart", []string{"-f", umbrella}, ""},
		{"global by --set", []string{"--set", "global.foo=bar"}, ""},
		{"own certificate", []string{"--set", "certs.mode=secret", "--set", "certs.secret.name=my-tls", "--set", "certs.secret.caBundle=LS0tLS1CRUdJTg=="}, ""},
		{"own certificate without caBundle", []string{"--set", "certs.mode=secret", "--set", "certs.secret.name=my-tls"}, "/certs/secret/caBundle"},
		{"own certificate without a Secret", []string{"--set", "certs.mode=secret", "--set", "certs.secret.caBundle=LS0tLS1CRUdJTg=="}, "/certs/secret/name"},
		{"agent UID auto", []string{"--set", "webhook.agentUid=auto"}, ""},
		{"agent UID a word", []string{"--set", "webhook.agentUid=openshift"}, "/webhook/agentUid"},
		{"agent UID root", []string{"--set", "webhook.agentUid=0"}, "/webhook/agentUid"},
		{"openshift", []string{"--set", "openshift=true"}, ""},
		{"priority quota", []string{"--set", "priorityClassName=system-cluster-critical", "--set", "priorityClassQuota.enabled=true"}, ""},
		{"priority quota with a bad count", []string{"--set", "priorityClassName=system-cluster-critical", "--set", "priorityClassQuota.pods=lots"}, "/priorityClassQuota/pods"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, cmd := range [][]string{
				{"lint", chart},
				{"template", "vault-injector", chart, "--namespace", "vault-injector", "--kube-version", kubeVersion},
			} {
				out, errOut, err := helm(t, append(cmd, tc.values...)...)
				switch {
				case tc.err == "" && err != nil:
					t.Errorf("helm %s: %v\n%s%s", cmd[0], err, out, errOut)
				case tc.err != "" && err == nil:
					t.Errorf("helm %s accepted it; want an error containing %q", cmd[0], tc.err)
				case tc.err != "" && !strings.Contains(out+errOut, tc.err):
					t.Errorf("helm %s: %s%s\nwant an error containing %q", cmd[0], out, errOut, tc.err)
				}
			}
		})
	}
}
