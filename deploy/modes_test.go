package deploy_test

import (
	"strings"
	"testing"
)

// TestChartModes: what the OpenShift, own-certificate and priority-quota values render.
func TestChartModes(t *testing.T) {
	for _, tc := range []struct {
		name         string
		values       []string
		want, absent []string
	}{
		{"openshift: no UID or GID anywhere, the agent's left to the SCC", []string{"--set", "openshift=true"},
			[]string{`"--agent-uid=auto"`, "runAsNonRoot: true"}, []string{"runAsUser", "runAsGroup", "fsGroup", "--agent-uid=65532"}},
		{"an OpenShift-range UID for the agent", []string{"--set", "webhook.agentUid=1000680000"},
			[]string{`"--agent-uid=1000680000"`}, nil},
		{"own certificate, fixed env style: the Secret mounted, files mode, caBundle from PEM, no RBAC, no API token",
			[]string{"--set", "certs.mode=secret", "--set", "certs.secret.name=my-tls", "--set", "certs.secret.caBundle=-----BEGIN CERTIFICATE-----", "--set", "webhook.envStyle=file"},
			[]string{"secretName: my-tls", `"--cert-mode=files"`, `"--tls-cert-file=/etc/vault-injector/tls/tls.crt"`,
				"mountPath: /etc/vault-injector/tls", "caBundle: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t", "automountServiceAccountToken: false", `"--env-style=file"`},
			[]string{"kind: Role", "kind: ClusterRole", "--cert-mode=self-managed", "cert-manager.io"}},
		{"own certificate, env style auto: an API token and read access to nodes, nothing else",
			[]string{"--set", "certs.mode=secret", "--set", "certs.secret.name=my-tls", "--set", "certs.secret.caBundle=-----BEGIN CERTIFICATE-----"},
			[]string{"automountServiceAccountToken: true", "name: vault-injector-nodes", `resources: ["nodes"]`, `verbs: ["get", "list", "watch"]`, `"--env-style=auto"`},
			[]string{"kind: Role\n", "mutatingwebhookconfigurations", `resources: ["secrets"]`}},
		{"own certificate: a base64 caBundle is kept",
			[]string{"--set", "certs.mode=secret", "--set", "certs.secret.name=my-tls", "--set", "certs.secret.caBundle=LS0tLS1CRUdJTg=="},
			[]string{"caBundle: LS0tLS1CRUdJTg=="}, nil},
		{"priority class quota", []string{"--set", "priorityClassName=system-cluster-critical", "--set", "priorityClassQuota.enabled=true"},
			[]string{"kind: ResourceQuota", "scopeName: PriorityClass", "- system-cluster-critical", `pods: "4"`, "priorityClassName: system-cluster-critical"}, nil},
		{"no quota by default", []string{"--set", "priorityClassName=system-cluster-critical"}, nil, []string{"ResourceQuota"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := string(helmTemplate(t, tc.values...))
			objects(t, []byte(out)) // well-formed YAML
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("rendering lacks %q", w)
				}
			}
			for _, a := range tc.absent {
				if strings.Contains(out, a) {
					t.Errorf("rendering has %q", a)
				}
			}
		})
	}
	// A quota with no class to scope to is refused when rendering.
	if _, errOut, err := helm(t, "template", "vault-injector", chart, "--set", "priorityClassQuota.enabled=true"); err == nil || !strings.Contains(errOut, "priorityClassQuota.enabled=true scopes a ResourceQuota to priorityClassName, which is empty") {
		t.Errorf("quota without priorityClassName: err %v, stderr %q", err, errOut)
	}
}
