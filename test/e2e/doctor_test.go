//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/vault-injector/vault-injector/doctor"
	"github.com/vault-injector/vault-injector/test/cluster"
)

// doctorRun runs `vault-injector doctor` from the product binary with the suite's admin
// kubeconfig and Vault address (no operator token: what a developer without Vault rights
// gets), and returns its output and exit code.
func doctorRun(t *testing.T, args ...string) (string, int) {
	t.Helper()
	return doctorRunEnv(t, nil, args...)
}

// doctorRunEnv is doctorRun with extra environment variables (VAULT_TOKEN: an operator token,
// kept off the command line).
func doctorRunEnv(t *testing.T, extraEnv []string, args ...string) (string, int) {
	t.Helper()
	args = append([]string{"doctor", "--kubeconfig=" + env.c.AdminKubeconfig(), "--vault-addr=" + env.vault.Addr}, args...)
	if env.vault.CACert != "" {
		args = append(args, "--vault-ca="+env.vault.CACert)
	}
	cmd := exec.Command(env.binary, args...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}, extraEnv...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	t.Logf("vault-injector %s -> exit %d\n%s", strings.Join(args[3:], " "), code, out.String())
	noSecrets(t, out.String())
	return out.String(), code
}

// noSecrets fails when the output holds anything shaped like a Vault token or a JWT.
func noSecrets(t *testing.T, out string) {
	t.Helper()
	for _, bad := range []string{"hvs.", "hvb.", "eyJ", env.vault.RootToken} {
		if strings.Contains(out, bad) {
			t.Errorf("doctor output contains %q, which looks like a token", bad)
		}
	}
}

// lineWith returns the checklist line containing all parts, or fails.
func lineWith(t *testing.T, out string, parts ...string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			return l
		}
	}
	t.Errorf("no line of the doctor output contains all of %q", parts)
	return ""
}

func writeYAML(t *testing.T, obj any) string {
	t.Helper()
	b, err := yaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "pod.yaml")
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// A healthy Deployment: its pod runs injected, and doctor passes every check, Vault side
// included (token request, login with the pod's role, read capability on the template's
// path, revoke), in text and in JSON.
func TestDoctorHealthyDeployment(t *testing.T) {
	ns := namespace(t, "doctor-ok", true, nil)
	role, path := vaultApp(t, ns, "app", "doctor-ok-value")
	pod := httpdPod("app", "app", cluster.FreePort(), map[string]string{
		"vault-injector.io/role":          role,
		"vault-injector.io/template-page": `{{ with secret "` + path + `" }}{{ .Data.var }}{{ end }}`,
	})
	labels := map[string]string{"app": "doctor-ok"}
	one := int32(1)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "app"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: pod.Annotations}, Spec: pod.Spec},
		},
	}
	if _, err := env.c.Client.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		pods, err := env.c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=doctor-ok"})
		if err == nil && len(pods.Items) == 1 && running(&pods.Items[0]) && injected(&pods.Items[0]) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deployment's pod is not running injected after 90s")
		}
		time.Sleep(300 * time.Millisecond)
	}

	out, code := doctorRun(t, "deployment/app", "-n", ns)
	if code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	if strings.Contains(out, "✖") || strings.Contains(out, " ! ") {
		t.Errorf("a check did not pass:\n%s", out)
	}
	for _, want := range [][]string{
		{"✔", "holds webhook " + doctor.WebhookName},
		{"✔", "verified by the caBundle"},
		{"✔", "namespace " + ns, "matches"},
		{"✔", "dry-run create comes back injected"},
		{"✔", "running annotated pod(s) carry"},
		{"✔", "TokenRequest for service account " + ns + "/app", `"vault"`},
		{"✔", "login to auth/kubernetes with role " + `"` + role + `"`},
		{"✔", path + ": read allowed"},
		{"✔", "revoked"},
	} {
		lineWith(t, out, want...)
	}

	js, code := doctorRun(t, "deployment/app", "-n", ns, "-o", "json")
	var rep doctor.Report
	if err := json.Unmarshal([]byte(js), &rep); err != nil {
		t.Fatalf("-o json does not parse: %v", err)
	}
	if code != 0 || !rep.Passed || rep.Failed != 0 || len(rep.Findings) < 10 {
		t.Errorf("json: exit %d, passed %v, failed %d, %d findings", code, rep.Passed, rep.Failed, len(rep.Findings))
	}
}

// A pod whose role is not bound to its service account: the login check fails naming the role
// and the service account, with the fix.
func TestDoctorRoleNotBound(t *testing.T) {
	ns := namespace(t, "doctor-unbound", true, nil)
	role, path := vaultApp(t, ns, "app", "x")
	if _, err := env.c.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "intruder"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := simplePod("intruder", map[string]string{"vault-injector.io/role": role, "vault-injector.io/secret-app": path})
	pod.Spec.ServiceAccountName = "intruder"
	pod.Namespace = ns
	pod.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}
	out, code := doctorRun(t, "-f", writeYAML(t, pod))
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	lineWith(t, out, "✖", "role "+`"`+role+`"`, "not bound to service account "+ns+"/intruder", "fix:", "bound_service_account_names")
	if strings.Count(out, "✖") != 1 {
		t.Errorf("want exactly one failed check (the login), got:\n%s", out)
	}
}

// A namespace without the opt-in label: the namespace check fails with the label command, and
// the dry-run shows the pod comes back uninjected.
func TestDoctorNamespaceNotLabelled(t *testing.T) {
	ns := namespace(t, "doctor-unlabelled", false, nil)
	pod := simplePod("app", wantsSecret)
	pod.Namespace = ns
	pod.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}
	out, code := doctorRun(t, "-f", writeYAML(t, pod), "-o", "json")
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	var rep doctor.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("-o json does not parse: %v", err)
	}
	got := map[string]doctor.Finding{}
	for _, f := range rep.Findings {
		got[f.Check] = f
	}
	nsf := got["namespace-selector"]
	if nsf.Status != doctor.Fail || !strings.Contains(nsf.Message, "lacks the label vault-injector.io/inject=enabled") ||
		nsf.Fix != "kubectl label namespace "+ns+" vault-injector.io/inject=enabled, then roll its workloads" {
		t.Errorf("namespace finding %+v", nsf)
	}
	if dr := got["dry-run"]; dr.Status != doctor.Fail || !strings.Contains(dr.Message, "without injection") {
		t.Errorf("dry-run finding %+v", dr)
	}
}

// Drift: an annotated pod created before its namespace was labelled runs without injection;
// doctor --all lists it with the command that recreates it.
func TestDoctorDrift(t *testing.T) {
	ns := namespace(t, "doctor-drift", false, nil)
	if _, err := env.c.Client.CoreV1().Pods(ns).Create(ctx, simplePod("early", wantsSecret), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	n, err := env.c.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Labels["vault-injector.io/inject"] = "enabled"
	if _, err := env.c.Client.CoreV1().Namespaces().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	out, code := doctorRun(t, "--all", "-n", ns)
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	lineWith(t, out, "✖", "1 of 1 running annotated pod(s) were not injected", "before the namespace was labelled", ": early", "fix: recreate them: kubectl -n "+ns+" get pod early -o yaml")
	// The namespace is labelled now, so the same pod created again would be injected.
	lineWith(t, out, "✔", "dry-run create comes back injected")
}

// A role that wants another audience, and a template reading a path the role's policy does
// not grant: each gives its own ✖. Without an operator token the audience failure is Vault's
// answer explained; with one (VAULT_TOKEN) doctor reads the role and names the mismatch.
func TestDoctorAudienceAndMissingPolicy(t *testing.T) {
	ns := namespace(t, "doctor-aud", true, nil)
	role, path := vaultApp(t, ns, "app", "x")
	v, err := env.vault.Client()
	if err != nil {
		t.Fatal(err)
	}
	otherAud := ns + "-other-audience"
	if _, err := v.Logical().Write("auth/kubernetes/role/"+otherAud, map[string]any{
		"bound_service_account_names": "app", "bound_service_account_namespaces": ns,
		"audience": "not-vault", "policies": role, "ttl": "1h",
	}); err != nil {
		t.Fatal(err)
	}
	file := func(role string, ann map[string]string) string {
		ann["vault-injector.io/role"] = role
		p := simplePod("app", ann)
		p.Namespace, p.Spec.ServiceAccountName = ns, "app"
		p.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}
		return writeYAML(t, p)
	}

	audFile := file(otherAud, map[string]string{"vault-injector.io/secret-app": path})
	out, code := doctorRun(t, "-f", audFile)
	if code != 1 {
		t.Errorf("audience: exit code %d, want 1", code)
	}
	lineWith(t, out, "✖", "login to auth/kubernetes", otherAud, "audience", "fix:")
	out, _ = doctorRunEnv(t, []string{"VAULT_TOKEN=" + env.vault.RootToken}, "-f", audFile)
	lineWith(t, out, "✖", "audience mismatch", otherAud, `requires audience "not-vault", the pod's token carries "vault"`, "fix:")

	missing := "secret/" + ns + "/not-granted"
	out, code = doctorRun(t, "-f", file(role, map[string]string{
		"vault-injector.io/template-both": fmt.Sprintf(`{{ with secret %q }}{{ .Data.var }}{{ end }}{{ with secret %q }}{{ .Data.var }}{{ end }}`, path, missing),
	}))
	if code != 1 {
		t.Errorf("missing policy: exit code %d, want 1", code)
	}
	lineWith(t, out, "✔", path+": read allowed")
	lineWith(t, out, "✖", missing+": the policies of role \""+role+"\" do not allow read", "fix:", `path "`+missing+`" { capabilities = ["read"] }`)
	lineWith(t, out, "✔", "revoked")
}
