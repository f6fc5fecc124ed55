package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const cliPolicy = `apiVersion: vault-injector.io/v1alpha1
kind: InjectionPolicy
rules:
- name: apps
  match: {namespaces: [shop]}
  allow: {roles: [app], authPaths: [auth/kubernetes], addresses: ["https://vault.vault.svc:8200"], paths: {read: [secret/data/*]}}
- name: team
  match: {namespaceSelector: {matchLabels: {team: a}}}
  allow: {roles: ["*"], authPaths: [auth/kubernetes], addresses: ["https://vault.vault.svc:8200"], paths: {read: ["**"]}}
`

func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(f, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestPolicyCommands(t *testing.T) {
	pol := writeFile(t, "policy.yaml", cliPolicy)
	podFile := writeFile(t, "pod.yaml", pod)
	admin := writeFile(t, "admin.yaml", strings.Replace(pod, "role: app", "role: admin", 1))
	bad := writeFile(t, "bad.yaml", "apiVersion: vault-injector.io/v1alpha1\nkind: InjectionPolicy\nrules: []\n")
	for _, tc := range []struct {
		name    string
		args    []string
		code    int
		out     []string // each in stdout
		errText string   // in stderr
	}{
		{"inject allowed", []string{"inject", "--policy", pol, "-n", "shop", "-f", podFile}, 0, []string{"pathRules", "name: vault-injector-agent"}, ""},
		{"inject denied", []string{"inject", "--policy", pol, "-n", "shop", "-f", admin}, 1, nil,
			"policy: namespace shop, service account default: role admin not in rule apps (allows app)"},
		{"inject, no rule matches", []string{"inject", "--policy", pol, "-n", "other", "-f", podFile}, 1, nil,
			"policy: namespace other, service account default: no policy rule matches this namespace and service account"},
		{"inject, selector with labels", []string{"inject", "--policy", pol, "-n", "other", "--namespace-labels", "team=a", "-f", admin}, 0, []string{"pathRules"}, ""},
		{"inject, invalid policy", []string{"inject", "--policy", bad, "-f", podFile}, 1, nil, "policy has no rules"},
		{"check valid", []string{"policy", "check", "-f", pol}, 0, []string{"valid, 2 rules (apps, team)"}, ""},
		{"check invalid", []string{"policy", "check", "-f", bad}, 1, nil, "policy has no rules"},
		{"check explains", []string{"policy", "check", "-f", pol, "-n", "shop", podFile, admin}, 1, []string{
			"Pod app in namespace shop: allowed",
			"identity default: allowed by rule apps",
			"Pod app in namespace shop: denied: policy: namespace shop, service account default: role admin not in rule apps (allows app)",
			"rule apps refuses: role admin not in rule apps (allows app)",
		}, "1 denied"},
		{"check without -f", []string{"policy", "check"}, 1, nil, "-f is required"},
		{"no subcommand", []string{"policy"}, 1, nil, "expected a subcommand"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, "", tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errOut)
			}
			for _, w := range tc.out {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			if !strings.Contains(errOut, tc.errText) {
				t.Errorf("stderr lacks %q:\n%s", tc.errText, errOut)
			}
		})
	}
}

func TestPolicyFlagsValidated(t *testing.T) {
	for _, tc := range []struct {
		flags policyFlags
		want  string
	}{
		{policyFlags{namespaceLabels: true}, "--policy-namespace-labels needs --policy-configmap"},
		{policyFlags{configMap: "a/b/c", key: "k"}, `--policy-configmap="a/b/c": expected <namespace>/<name> or <name>`},
		{policyFlags{configMap: "ns/", key: "k"}, `--policy-configmap="ns/": expected`},
		{policyFlags{configMap: "ns/p", key: ""}, "--policy-key is empty"},
	} {
		err := tc.flags.start(t.Context(), nil, "", nil, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.flags, err, tc.want)
		}
	}
}
