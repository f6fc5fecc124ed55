//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/vault-injector/vault-injector/patch"
	"github.com/vault-injector/vault-injector/test/cluster"
	"github.com/vault-injector/vault-injector/test/pgtest"
	"github.com/vault-injector/vault-injector/test/testkit"
	"github.com/vault-injector/vault-injector/test/trap"
)

// Issue 12.1: whoever edits a ConfigMap the app reads through envFrom (with or without a
// prefix) cannot redirect the agent: VAULT_AGENT_ADDR, VAULT_ADDR, VAULT_PROXY_ADDR,
// VAULT_SKIP_VERIFY and VAULT_INJECTOR_CONFIG name a listener the test runs; it receives
// nothing, the pod renders from the real Vault, and {{ env }} still sees the other keys.
func TestAppEnvironmentCannotRedirectAgent(t *testing.T) {
	ns := namespace(t, "h1-app-env", true, nil)
	role, path := vaultApp(t, ns, "app", "from-vault")
	tl := trap.Listen(t)
	addr := tl.Addr
	trap := "http://" + addr
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "app-env"}, Data: map[string]string{
		"VAULT_AGENT_ADDR": trap, "VAULT_ADDR": trap, "VAULT_PROXY_ADDR": trap, "VAULT_SKIP_VERIFY": "true",
		"VAULT_INJECTOR_CONFIG": "/proc/self/environ", "GREETING": "hello",
	}}
	if _, err := env.c.Client.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	port := cluster.FreePort()
	pod := httpdPod("app", "app", port, map[string]string{
		"vault-injector.io/role":         role,
		"vault-injector.io/template-out": fmt.Sprintf(`{{ with secret %q }}{{ .Data.var }}{{ end }} {{ env "GREETING" }} {{ env "P_GREETING" }}`, path),
	})
	ref := corev1.LocalObjectReference{Name: "app-env"}
	pod.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: ref}},
		{Prefix: "P_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: ref}}}
	if _, err := env.c.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod(t, ns, "app", 90*time.Second, "app running", running)
	if got, want := get(t, "http://127.0.0.1:"+port+"/out"), "from-vault hello hello"; got != want {
		t.Errorf("rendered %q, want %q", got, want)
	}
	if n := tl.Connections(); n != 0 {
		t.Errorf("the listener named in the app's ConfigMap received %d connections", n)
	}
}

// Issue 12.2 on the real stack: a pod with dynamic database credentials and a KV template
// that breaks after start keeps a working database user past max_ttl/2 (the lease is renewed
// while the other template fails), and the broken file recovers once the value is fixed.
func TestBrokenTemplateKeepsDatabaseCredentialsAlive(t *testing.T) {
	pg := pgtest.StartT(t)
	ns := namespace(t, "h2-broken-template", true, nil)
	const sa, mount = "app", "db-h2"
	role, kvPath := vaultApp(t, ns, sa, "aGVsbG8=") // base64 of "hello"
	const defaultTTL, maxTTL = 3 * time.Second, 20 * time.Second
	dbRole := databaseRole(t, pg, ns, sa, mount, defaultTTL, maxTTL)
	v, err := env.vault.Client()
	if err != nil {
		t.Fatal(err)
	}
	// One role for both paths: the database role's policy plus the KV reader's.
	if _, err := v.Logical().Write("auth/kubernetes/role/"+dbRole, map[string]any{
		"bound_service_account_names": sa, "bound_service_account_namespaces": ns,
		"audience": "vault", "policies": dbRole + "," + role, "ttl": "1h",
	}); err != nil {
		t.Fatal(err)
	}
	port := cluster.FreePort()
	pod := httpdPod("app", sa, port, map[string]string{
		"vault-injector.io/role":              dbRole,
		"vault-injector.io/refresh-interval":  "1s",
		"vault-injector.io/template-db.env":   fmt.Sprintf("{{ with secret %q }}username={{ .Data.username }}\npassword={{ .Data.password }}\n{{ end }}", mount+"/creds/app"),
		"vault-injector.io/template-greeting": fmt.Sprintf(`{{ with secret %q }}{{ base64Decode .Data.var }}{{ end }}`, kvPath),
	})
	start := time.Now()
	if _, err := env.c.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod(t, ns, "app", 90*time.Second, "app running", running)
	base := "http://127.0.0.1:" + port
	if got := get(t, base+"/greeting"); got != "hello" {
		t.Fatalf("greeting = %q", got)
	}
	user, pass, err := pgtest.ParseCredentials(get(t, base+"/db.env"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Logical().Write(kvPath, map[string]any{"var": "not base64!"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(start.Add(maxTTL/2 + 2*time.Second)))
	if err := pg.CanLogin(ctx, user, pass); err != nil {
		t.Fatalf("%s after the pod started, with one template failing, the database user is dead (default_ttl %s): %v", time.Since(start).Round(time.Second), defaultTTL, err)
	}
	if got := get(t, base+"/greeting"); got != "hello" {
		t.Errorf("the failing file lost its last good content: %q", got)
	}
	if _, err := v.Logical().Write(kvPath, map[string]any{"var": "d29ybGQ="}); err != nil { // "world"
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for get(t, base+"/greeting") != "world" {
		if time.Now().After(deadline) {
			t.Fatal("the fixed value did not reach its file within 10 s (refresh 1 s)")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Issue 12.3: exactly one database user and one Vault lease per pod, whether the classic
// sidecar follows the init container or a native sidecar is killed five times (three on
// kubelets before 1.35, whose restart back-off the harness cannot shorten); one login in
// all; no user left after the pod is deleted.
func TestOneLeasePerPod(t *testing.T) {
	pg := pgtest.StartT(t)
	for _, style := range []string{"classic", "native"} {
		t.Run(style, func(t *testing.T) {
			ns := namespace(t, "h3-lease-"+style, style == "native", nil)
			const sa = "app"
			mount := "db-h3-" + style
			if _, err := env.c.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			role := databaseRole(t, pg, ns, sa, mount, time.Minute, 10*time.Minute)
			pod := httpdPod("app", sa, cluster.FreePort(), map[string]string{
				"vault-injector.io/role":            role,
				"vault-injector.io/template-db.env": fmt.Sprintf("{{ with secret %q }}username={{ .Data.username }}\npassword={{ .Data.password }}\n{{ end }}", mount+"/creds/app"),
			})
			if style == "classic" {
				// The suite's webhook runs native sidecars: inject this pod offline with the
				// classic style and create it in a namespace the webhook does not select.
				pod = injectOffline(t, ns, pod, "--sidecar-style=classic")
			}
			if _, err := env.c.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			p := waitPod(t, ns, "app", 90*time.Second, "app running", running)
			if style == "native" {
				// 5 kills where the kubelet restarts within 1 s (1.35+, capped by the harness),
				// 3 on older kubelets (restarts after 0, 10 and 20 s of back-off): each restart
				// is asserted to come no earlier than that release's back-off.
				kills := 5
				if env.c.Version.RestartDelay(kills) > time.Second {
					kills = 3
				}
				for i := 1; i <= kills; i++ {
					backoff := env.c.Version.RestartDelay(i)
					killed := time.Now()
					killAgent(t, p)
					p = waitPod(t, ns, "app", 60*time.Second+backoff, fmt.Sprintf("agent restarted %d times and started", i), func(p *corev1.Pod) bool {
						s := agentStatus(p)
						return s != nil && s.RestartCount >= int32(i) && s.Started != nil && *s.Started && s.State.Running != nil
					})
					took := time.Since(killed)
					t.Logf("Kubernetes %s: restart %d of the agent started %s after the kill (back-off %s)", env.c.Version, i, took.Round(100*time.Millisecond), backoff)
					if backoff > time.Second && took < backoff-time.Second {
						t.Errorf("restart %d came %s after the kill, before the %s back-off of kubelet %s", i, took, backoff, env.c.Version)
					}
				}
			}
			time.Sleep(2 * time.Second) // let a sidecar that wrongly fetches anew do so
			users, err := pg.Roles(ctx, "v-")
			if err != nil {
				t.Fatal(err)
			}
			// The subtests run one after the other and each deletes its pod: every user is this pod's.
			if len(users) != 1 {
				t.Errorf("%d database users for the pod, want 1: %v", len(users), users)
			}
			if n := vaultLeases(t, mount+"/creds/app/"); n != 1 {
				t.Errorf("%d Vault leases under %s/creds/app, want 1", n, mount)
			}
			logs := agentLogs(t, ns, "app", style)
			if !strings.Contains(logs, "pod_logins=1") || strings.Contains(logs, "pod_logins=2") {
				t.Errorf("the agent's log does not show exactly one login for the pod:\n%s", logs)
			}
			grace := int64(5)
			if err := env.c.Client.CoreV1().Pods(ns).Delete(ctx, "app", metav1.DeleteOptions{GracePeriodSeconds: &grace}); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				users, err := pg.Roles(ctx, "v-")
				if err == nil && len(users) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("database users left 30 s after the pod was deleted: %v (err %v)", users, err)
				}
				time.Sleep(250 * time.Millisecond)
			}
		})
	}
}

// injectOffline runs the product binary's `inject` with the suite webhook's settings plus args.
func injectOffline(t *testing.T, ns string, pod *corev1.Pod, args ...string) *corev1.Pod {
	t.Helper()
	pod.APIVersion, pod.Kind = "v1", "Pod"
	in, err := yaml.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(env.binary, append([]string{"inject", "-f", "-", "-n", ns, "--vault-address=" + env.vault.Addr,
		"--agent-image=" + agentImage, "--agent-image-pull-policy=Never"}, args...)...)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("inject: %v\n%s", err, stderr.String())
	}
	var injected corev1.Pod
	if err := yaml.Unmarshal(out, &injected); err != nil {
		t.Fatal(err)
	}
	return &injected
}

// agentStatus is the status of our long-running agent container (native sidecar or classic).
func agentStatus(p *corev1.Pod) *corev1.ContainerStatus {
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for i := range list {
			if list[i].Name == patch.AgentContainer {
				return &list[i]
			}
		}
	}
	return nil
}

// killAgent SIGKILLs the agent's process on this node (an OOM kill, as the kubelet sees it),
// found by its container ID in /proc/*/cgroup.
func killAgent(t *testing.T, p *corev1.Pod) {
	t.Helper()
	s := agentStatus(p)
	if s == nil || s.ContainerID == "" {
		t.Fatalf("no running agent container: %s", describe(p))
	}
	pid, err := testkit.ContainerProcess(s.ContainerID, "agent")
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

// vaultLeases counts the leases under prefix (sys/leases/lookup/<prefix>).
func vaultLeases(t *testing.T, prefix string) int {
	t.Helper()
	v, err := env.vault.Client()
	if err != nil {
		t.Fatal(err)
	}
	s, err := v.Logical().List("sys/leases/lookup/" + prefix)
	if err != nil {
		t.Fatal(err)
	}
	if s == nil {
		return 0
	}
	keys, _ := s.Data["keys"].([]any)
	return len(keys)
}

// agentLogs is the current log of the pod's long-running agent container.
func agentLogs(t *testing.T, ns, pod, style string) string {
	t.Helper()
	b, err := env.c.Client.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Container: patch.AgentContainer}).DoRaw(ctx)
	if err != nil {
		t.Fatalf("logs of %s (%s): %v", patch.AgentContainer, style, err)
	}
	return string(b)
}
