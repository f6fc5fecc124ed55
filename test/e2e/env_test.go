//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/version"

	"github.com/vault-injector/vault-injector/agentconfig"
	"github.com/vault-injector/vault-injector/envstyle"
	"github.com/vault-injector/vault-injector/patch"
	"github.com/vault-injector/vault-injector/test/pgtest"
)

// envFixture is a namespace whose service account may read dynamic PostgreSQL credentials
// (mount/creds/app) and a KV version 2 secret (kv/data/app, key api-key).
type envFixture struct {
	ns, sa, role, mount, kv, apiKey string
	pg                              *pgtest.Server
}

func newEnvFixture(t *testing.T, name string, defaultTTL, maxTTL time.Duration) *envFixture {
	t.Helper()
	f := &envFixture{pg: pgtest.StartT(t), sa: "app", mount: "db-" + name, kv: "kv-" + name, apiKey: "k-" + fmt.Sprint(time.Now().UnixNano())}
	f.ns = namespace(t, name, true, nil)
	if _, err := env.c.Client.CoreV1().ServiceAccounts(f.ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: f.sa}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.role = databaseRole(t, f.pg, f.ns, f.sa, f.mount, defaultTTL, maxTTL)
	v, err := env.vault.Client()
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Sys().Mount(f.kv, &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Sys().Unmount(f.kv) })
	if _, err := v.Logical().Write(f.kv+"/data/app", map[string]any{"data": map[string]any{"api-key": f.apiKey}}); err != nil {
		t.Fatal(err)
	}
	if err := v.Sys().PutPolicy(f.role, fmt.Sprintf(`path "%s/creds/app" { capabilities = ["read"] }
path "%s/data/app" { capabilities = ["read"] }`, f.mount, f.kv)); err != nil {
		t.Fatal(err)
	}
	return f
}

// annotations asks for DB_USER and DB_PASSWORD from one dynamic role and API_KEY from KV v2.
func (f *envFixture) annotations(extra map[string]string) map[string]string {
	a := map[string]string{
		"vault-injector.io/role":            f.role,
		"vault-injector.io/env-DB_USER":     f.mount + "/creds/app#username",
		"vault-injector.io/env-DB_PASSWORD": f.mount + "/creds/app#password",
		"vault-injector.io/env-API_KEY":     f.kv + "/data/app#api-key",
	}
	for k, v := range extra {
		a[k] = v
	}
	return a
}

// envPod runs busybox (unchanged) printing its environment, then sleeping.
func envPod(name, sa string, ann map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann},
		Spec: corev1.PodSpec{
			ServiceAccountName: sa,
			// Vault listens on the host's loopback.
			HostNetwork:                   true,
			TerminationGracePeriodSeconds: int64p(1),
			Containers: []corev1.Container{{
				Name: "app", Image: appImage, ImagePullPolicy: corev1.PullNever,
				// $$ is the kubelet's escape for $: the shell sees $$, its PID.
				Command: []string{"sh", "-c", `echo "pid=$$$$"; env | grep -E '^(DB_USER|DB_PASSWORD|API_KEY|VAULT_INJECTOR_ENV_VERSION)=' | sort; exec sleep 3600`},
			}},
		},
	}
}

var envLine = regexp.MustCompile(`(?m)^([A-Z_]+)=(.*)$`)

// appEnv waits for the app container's output and returns the variables it printed (at
// least min of them).
func appEnv(t *testing.T, ns, pod string, min int) map[string]string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := env.c.Client.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Container: "app"}).DoRaw(ctx)
		if err == nil && strings.Contains(string(b), "pid=") {
			out := map[string]string{}
			for _, m := range envLine.FindAllStringSubmatch(string(b), -1) {
				out[m[1]] = m[2]
			}
			if !strings.Contains(string(b), "pid=1\n") {
				t.Errorf("the app is not PID 1 of its container (exec must replace the wrapper): %q", strings.SplitN(string(b), "\n", 2)[0])
			}
			if len(out) >= min {
				return out
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("app output of %s/%s has no environment after 30s: %q (%v)", ns, pod, b, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// nodeEnvStyle is what --env-style=auto picks on the test cluster: its kubelet's version.
func nodeEnvStyle(t *testing.T) agentconfig.EnvStyle {
	t.Helper()
	nodes, err := env.c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil || len(nodes.Items) == 0 {
		t.Fatalf("list nodes: %v (%d)", err, len(nodes.Items))
	}
	v := version.MustParseGeneric(nodes.Items[0].Status.NodeInfo.KubeletVersion)
	if v.AtLeast(envstyle.MinFileKubelet) {
		return agentconfig.EnvStyleFile
	}
	return agentconfig.EnvStyleExec
}

// checkNoValueStored asserts that no API object the cluster stores holds a secret value: the
// pod (spec and status), the namespace's events, every Secret and ConfigMap of the cluster.
func checkNoValueStored(t *testing.T, ns, pod string, values ...string) {
	t.Helper()
	var stored []string
	p, err := env.c.Client.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(p)
	stored = append(stored, "pod:"+string(b))
	evs, err := env.c.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ = json.Marshal(evs)
	stored = append(stored, "events:"+string(b))
	secrets, err := env.c.Client.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ = json.Marshal(secrets)
	stored = append(stored, "secrets:"+string(b))
	cms, err := env.c.Client.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ = json.Marshal(cms)
	stored = append(stored, "configmaps:"+string(b))
	for _, s := range stored {
		kind, _, _ := strings.Cut(s, ":")
		for _, v := range values {
			if v != "" && strings.Contains(s, v) {
				t.Errorf("%s stored in the API holds a secret value (%d bytes)", kind, len(v))
			}
		}
	}
}

// TestEnvVariablesFromVault: an unchanged busybox app gets DB_USER and DB_PASSWORD from one
// dynamic PostgreSQL lease and API_KEY from KV v2 as environment variables, with the style the
// nodes allow (auto) and with the exec style asked for by annotation; the values work and no
// API object holds them; a container without a command cannot use exec.
func TestEnvVariablesFromVault(t *testing.T) {
	f := newEnvFixture(t, "env-vars", time.Hour, 2*time.Hour)
	auto := nodeEnvStyle(t)
	t.Logf("the test cluster's kubelet makes --env-style=auto pick %q", auto)
	for _, tc := range []struct {
		name  string
		extra map[string]string
		style agentconfig.EnvStyle
	}{
		{"auto", nil, auto},
		{"exec", map[string]string{agentconfig.AnnotationEnvStyle: "exec"}, agentconfig.EnvStyleExec},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "env-" + tc.name
			leasesBefore := vaultLeases(t, f.mount+"/creds/app")
			start := time.Now()
			if _, err := env.c.Client.CoreV1().Pods(f.ns).Create(ctx, envPod(name, f.sa, f.annotations(tc.extra)), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			p := waitPod(t, f.ns, name, 90*time.Second, "app running", running)
			got := appEnv(t, f.ns, name, 3)
			t.Logf("pod create -> app running with its env (%s): %s", tc.style, time.Since(start).Round(10*time.Millisecond))
			if got["API_KEY"] != f.apiKey {
				t.Errorf("API_KEY = %q, want the KV v2 value", got["API_KEY"])
			}
			if err := f.pg.CanLogin(ctx, got["DB_USER"], got["DB_PASSWORD"]); err != nil {
				t.Errorf("DB_USER/DB_PASSWORD from the app's environment do not log in: %v", err)
			}
			if n := vaultLeases(t, f.mount+"/creds/app") - leasesBefore; n != 1 {
				t.Errorf("the pod holds %d database leases, want 1 (username and password from one lease)", n)
			}
			app := p.Spec.Containers[0]
			switch tc.style {
			case agentconfig.EnvStyleFile:
				n := 0
				for _, e := range app.Env {
					if e.ValueFrom != nil && e.ValueFrom.FileKeyRef != nil && e.ValueFrom.FileKeyRef.VolumeName == patch.EnvVolume {
						n++
					}
				}
				if n != 3 || strings.Contains(strings.Join(app.Command, " "), agentconfig.ExecBinary) {
					t.Errorf("file style: want 3 fileKeyRef entries and the command untouched; got %d, command %q", n, app.Command)
				}
			case agentconfig.EnvStyleExec:
				if len(app.Command) < 5 || app.Command[0] != agentconfig.ExecBinary || app.Command[4] != "sh" {
					t.Errorf("exec style: command = %q, want it wrapped by %s exec", app.Command, agentconfig.ExecBinary)
				}
			}
			checkNoValueStored(t, f.ns, name, got["DB_PASSWORD"], got["API_KEY"])
		})
	}

	t.Run("exec-without-command-denied", func(t *testing.T) {
		p := envPod("no-command", f.sa, f.annotations(map[string]string{agentconfig.AnnotationEnvStyle: "exec"}))
		p.Spec.Containers[0].Command = nil
		p.Spec.Containers[0].Args = []string{"sleep", "3600"}
		_, err := dryRunCreate(t, f.ns, p)
		want := `container "app" has no command in the pod spec`
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "never asks an image registry") {
			t.Fatalf("create = %v, want a denial containing %q and why", err, want)
		}
	})

	t.Run("name-defined-twice-denied", func(t *testing.T) {
		p := envPod("twice", f.sa, f.annotations(nil))
		p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "API_KEY", Value: "mine"}}
		_, err := dryRunCreate(t, f.ns, p)
		if err == nil || !strings.Contains(err.Error(), "already defines environment variable API_KEY") {
			t.Fatalf("create = %v, want a denial naming API_KEY", err)
		}
	})

	t.Run("missing-key", func(t *testing.T) {
		ann := f.annotations(map[string]string{"vault-injector.io/env-API_KEY": f.kv + "/data/app#api-kee"})
		if _, err := env.c.Client.CoreV1().Pods(f.ns).Create(ctx, envPod("missing-key", f.sa, ann), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf(`secret %s/data/app has no key "api-kee"`, f.kv)
		deadline := time.Now().Add(60 * time.Second)
		var event string
		for event == "" && time.Now().Before(deadline) {
			evs, err := env.c.Client.CoreV1().Events(f.ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=missing-key"})
			if err == nil {
				for _, e := range evs.Items {
					if strings.Contains(e.Message, want) {
						event = e.Reason + ": " + e.Message
					}
				}
			}
			time.Sleep(500 * time.Millisecond)
		}
		if event == "" {
			t.Fatalf("no Event of pod missing-key names %q within 60s", want)
		}
		t.Logf("event: %s", event)
		p, err := env.c.Client.CoreV1().Pods(f.ns).Get(ctx, "missing-key", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range p.Status.ContainerStatuses {
			if s.Name == "app" && (s.State.Running != nil || s.State.Terminated != nil || s.LastTerminationState.Terminated != nil) {
				t.Errorf("the app started without its variables: %+v", s.State)
			}
		}
		// The agent logs the reason at once, then exits when the probe has seen it: read the
		// current container's log, else the previous one's.
		quoted := strings.ReplaceAll(want, `"`, `\"`)
		var logs string
		for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
			for _, previous := range []bool{false, true} {
				b, err := env.c.Client.CoreV1().Pods(f.ns).GetLogs("missing-key", &corev1.PodLogOptions{Container: patch.AgentContainer, Previous: previous}).DoRaw(ctx)
				if err == nil {
					logs = string(b)
				}
				if strings.Contains(logs, quoted) {
					return
				}
			}
		}
		t.Errorf("the agent's log does not name the path and key within 20s: %s", lastLines(logs, 5))
	})
}

// TestEnvRestartOnChange: with env-on-change: restart, the app container restarts once its
// dynamic credentials are replaced (before max_ttl), and the restarted app has new credentials
// that work.
func TestEnvRestartOnChange(t *testing.T) {
	const defaultTTL, maxTTL = 5 * time.Second, 20 * time.Second
	f := newEnvFixture(t, "env-restart", defaultTTL, maxTTL)
	ann := f.annotations(map[string]string{agentconfig.AnnotationEnvOnChange: "restart"})
	start := time.Now()
	if _, err := env.c.Client.CoreV1().Pods(f.ns).Create(ctx, envPod("app", f.sa, ann), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod(t, f.ns, "app", 90*time.Second, "app running", running)
	first := appEnv(t, f.ns, "app", 4)
	if err := f.pg.CanLogin(ctx, first["DB_USER"], first["DB_PASSWORD"]); err != nil {
		t.Fatalf("first credentials do not log in: %v", err)
	}
	restarted := waitPod(t, f.ns, "app", maxTTL+40*time.Second, "app container restarted", func(p *corev1.Pod) bool {
		for _, s := range p.Status.ContainerStatuses {
			if s.Name == "app" && s.RestartCount >= 1 && s.State.Running != nil {
				return true
			}
		}
		return false
	})
	t.Logf("app container restarted %s after the pod was created (default_ttl %s, max_ttl %s)", time.Since(start).Round(100*time.Millisecond), defaultTTL, maxTTL)
	for _, s := range restarted.Status.ContainerStatuses {
		if s.Name == "app" && s.LastTerminationState.Terminated != nil {
			t.Logf("app's last termination: %s (exit %d)", s.LastTerminationState.Terminated.Reason, s.LastTerminationState.Terminated.ExitCode)
		}
	}
	second := appEnv(t, f.ns, "app", 4)
	if second["DB_USER"] == first["DB_USER"] {
		t.Fatalf("the restarted app still has the first user %s", first["DB_USER"])
	}
	if err := f.pg.CanLogin(ctx, second["DB_USER"], second["DB_PASSWORD"]); err != nil {
		t.Fatalf("the restarted app's credentials do not log in: %v", err)
	}
	if second[agentconfig.EnvVersionVar] == first[agentconfig.EnvVersionVar] {
		t.Errorf("env version unchanged across the restart: %q", first[agentconfig.EnvVersionVar])
	}
	// The first lease ends at max_ttl at the latest; Vault then drops its user.
	gone := start.Add(maxTTL + 15*time.Second)
	for {
		exists, err := f.pg.RoleExists(ctx, first["DB_USER"])
		if err == nil && !exists {
			break
		}
		if time.Now().After(gone) {
			t.Fatalf("first database user %s still exists %s after pod creation (err %v)", first["DB_USER"], maxTTL+15*time.Second, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestEnvStartupFigures measures pod create -> app container running, ten times each, for a
// pod whose app gets a KV value as an environment variable (the style auto picks) and the same
// pod getting it as a file; it asserts each app saw its value, and logs the medians (README).
func TestEnvStartupFigures(t *testing.T) {
	ns := namespace(t, "env-figures", true, nil)
	role, path := vaultApp(t, ns, "app", "figure-value")
	const n = 10
	var withEnv, withFile []time.Duration
	for i := range n {
		for _, kind := range []string{"env", "file"} {
			name := fmt.Sprintf("%s-%d", kind, i)
			ann := map[string]string{"vault-injector.io/role": role}
			pod := envPod(name, "app", ann)
			if kind == "env" {
				ann["vault-injector.io/env-API_KEY"] = path + "#var"
			} else {
				ann["vault-injector.io/secret-app"] = path
				pod.Spec.Containers[0].Command = []string{"sh", "-c", `echo "pid=$$$$"; echo "API_KEY=$$(sed -n 's/.*"var": *"\(.*\)".*/\1/p' /vault/secrets/app)"; exec sleep 3600`}
			}
			start := time.Now()
			if _, err := env.c.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			waitPodFast(t, ns, name, 60*time.Second, running)
			took := time.Since(start)
			if got := appEnv(t, ns, name, 1)["API_KEY"]; got != "figure-value" {
				t.Fatalf("%s: the app saw API_KEY=%q", name, got)
			}
			if kind == "env" {
				withEnv = append(withEnv, took)
			} else {
				withFile = append(withFile, took)
			}
			grace := int64(0)
			_ = env.c.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &grace})
		}
	}
	t.Logf("pod create -> app running, median of %d: env variable (%s) %s, file %s", n, nodeEnvStyle(t), median(withEnv), median(withFile))
}

// waitPodFast is waitPod polling every 50 ms, for timings.
func waitPodFast(t *testing.T, ns, name string, timeout time.Duration, cond func(*corev1.Pod) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p, err := env.c.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{}); err == nil && cond(p) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitPod(t, ns, name, time.Second, "condition", cond)
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2].Round(10 * time.Millisecond)
}
