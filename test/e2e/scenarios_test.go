//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vault-injector/vault-injector/agentconfig"
	"github.com/vault-injector/vault-injector/patch"
	"github.com/vault-injector/vault-injector/test/cluster"
)

var ctx = context.Background()

// namespace creates a namespace (labelled for injection when inject is true) and waits for its
// default service account; it is deleted at cleanup.
func namespace(t *testing.T, name string, inject bool, labels map[string]string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}}
	if inject {
		ns.Labels["vault-injector.io/inject"] = "enabled"
	}
	for k, v := range labels {
		ns.Labels[k] = v
	}
	if _, err := env.c.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		grace := int64(1)
		_ = env.c.Client.CoreV1().Pods(name).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &grace}, metav1.ListOptions{})
		_ = env.c.Client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
	})
	if err := env.c.WaitNamespaceReady(ctx, name); err != nil {
		t.Fatal(err)
	}
	return name
}

// vaultApp creates service account sa in ns, a KV v1 secret at secret/<ns>/app and a Vault role
// <ns>-reader bound to sa that may read only that path.
func vaultApp(t *testing.T, ns, sa, value string) (role, path string) {
	t.Helper()
	if _, err := env.c.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	v, err := env.vault.Client()
	if err != nil {
		t.Fatal(err)
	}
	path = "secret/" + ns + "/app"
	role = ns + "-reader"
	if _, err := v.Logical().Write(path, map[string]any{"var": value}); err != nil {
		t.Fatal(err)
	}
	if err := v.Sys().PutPolicy(role, fmt.Sprintf(`path %q { capabilities = ["read"] }`, path)); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Logical().Write("auth/kubernetes/role/"+role, map[string]any{
		"bound_service_account_names":      sa,
		"bound_service_account_namespaces": ns,
		"audience":                         "vault",
		"policies":                         role,
		"ttl":                              "1h",
	}); err != nil {
		t.Fatal(err)
	}
	return role, path
}

func int64p(v int64) *int64 { return &v }

// httpdPod serves the rendered directory on 127.0.0.1:port with busybox httpd.
func httpdPod(name, sa string, port string, ann map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann},
		Spec: corev1.PodSpec{
			ServiceAccountName:            sa,
			HostNetwork:                   true,
			TerminationGracePeriodSeconds: int64p(5),
			Containers: []corev1.Container{{
				Name: "app", Image: appImage, ImagePullPolicy: corev1.PullNever,
				Command: []string{"httpd", "-f", "-p", "127.0.0.1:" + port, "-h", "/vault/secrets"},
			}},
		},
	}
}

// waitPod polls the pod until cond is true (bounded).
func waitPod(t *testing.T, ns, name string, timeout time.Duration, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last *corev1.Pod
	for time.Now().Before(deadline) {
		p, err := env.c.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			last = p
			if cond(p) {
				return p
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	if evs, err := env.c.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{}); err == nil {
		for _, e := range evs.Items {
			t.Logf("event %s %s: %s %s", e.InvolvedObject.Name, e.Type, e.Reason, e.Message)
		}
	}
	t.Fatalf("pod %s/%s: %s not reached in %s; last status: %s", ns, name, what, timeout, describe(last))
	return nil
}

func describe(p *corev1.Pod) string {
	if p == nil {
		return "(no pod)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "phase=%s", p.Status.Phase)
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, s := range list {
			fmt.Fprintf(&b, "; %s ready=%v restarts=%d state=%+v last=%+v", s.Name, s.Ready, s.RestartCount, s.State, s.LastTerminationState)
		}
	}
	return b.String()
}

func running(p *corev1.Pod) bool {
	for _, s := range p.Status.ContainerStatuses {
		if s.Name == "app" && s.State.Running != nil {
			return true
		}
	}
	return false
}

func get(t *testing.T, url string) string {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := client.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return string(b)
			}
			err = fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func dryRunCreate(t *testing.T, ns string, p *corev1.Pod) (*corev1.Pod, error) {
	t.Helper()
	return env.c.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
}

func injected(p *corev1.Pod) bool {
	_, ok := p.Annotations[agentconfig.AnnotationStatus]
	return ok
}

func countAgents(p *corev1.Pod) int {
	n := 0
	for _, list := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for _, c := range list {
			if strings.HasPrefix(c.Name, "vault-injector-") {
				n++
			}
		}
	}
	return n
}

func simplePod(name string, ann map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: appImage, ImagePullPolicy: corev1.PullNever, Command: []string{"sleep", "3600"}}}},
	}
}

var wantsSecret = map[string]string{"vault-injector.io/role": "r", "vault-injector.io/secret-a": "secret/a"}

// Scenario 1: who gets injected.
func TestInjectionDecisions(t *testing.T) {
	on := namespace(t, "s1-labelled", true, nil)
	off := namespace(t, "s1-unlabelled", false, nil)

	got, err := dryRunCreate(t, on, simplePod("annotated", wantsSecret))
	if err != nil {
		t.Fatal(err)
	}
	if !injected(got) || countAgents(got) != 1 || got.Spec.InitContainers[0].Name != patch.AgentContainer {
		t.Fatalf("labelled namespace: pod not injected: %+v", got.Spec.InitContainers)
	}

	got, err = dryRunCreate(t, off, simplePod("annotated", wantsSecret))
	if err != nil || injected(got) || countAgents(got) != 0 {
		t.Fatalf("unlabelled namespace: pod changed (err %v)", err)
	}

	optOut := map[string]string{"vault-injector.io/inject": "false"}
	for k, v := range wantsSecret {
		optOut[k] = v
	}
	got, err = dryRunCreate(t, on, simplePod("opted-out", optOut))
	if err != nil || injected(got) {
		t.Fatalf("opted-out pod changed (err %v)", err)
	}

	// kube-system never reaches the webhook, even if someone labels it.
	ks, err := env.c.Client.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ks.Labels["vault-injector.io/inject"] = "enabled"
	if _, err := env.c.Client.CoreV1().Namespaces().Update(ctx, ks, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := webhookMetric(t, "skipped", "excluded-namespace")
	got, err = dryRunCreate(t, "kube-system", simplePod("annotated", wantsSecret))
	if err != nil || injected(got) {
		t.Fatalf("kube-system pod changed (err %v)", err)
	}
	if after := webhookMetric(t, "skipped", "excluded-namespace"); after != before {
		t.Errorf("a kube-system pod reached the webhook (excluded-namespace %v -> %v)", before, after)
	}

	// Re-admission of an injected pod (what reinvocation sends) adds nothing.
	first, err := dryRunCreate(t, on, simplePod("again", wantsSecret))
	if err != nil {
		t.Fatal(err)
	}
	again := first.DeepCopy()
	again.ObjectMeta = metav1.ObjectMeta{Name: "again", Annotations: first.Annotations}
	got, err = dryRunCreate(t, on, again)
	if err != nil || countAgents(got) != 1 || len(got.Spec.Volumes) != len(first.Spec.Volumes) {
		t.Fatalf("second admission changed the pod: %d agents, %d vs %d volumes (err %v)", countAgents(got), len(got.Spec.Volumes), len(first.Spec.Volumes), err)
	}

	// A bad annotation is refused with a message naming it.
	bad := map[string]string{"vault-injector.io/mode": "forever"}
	for k, v := range wantsSecret {
		bad[k] = v
	}
	_, err = dryRunCreate(t, on, simplePod("bad", bad))
	if err == nil || !strings.Contains(err.Error(), `vault-injector.io/mode="forever" is invalid: expected "sidecar" or "init"`) {
		t.Fatalf("bad annotation: got %v", err)
	}
}

// Scenario 3: the seed's templated nginx, served by busybox httpd from the rendered directory.
func TestTemplatedNginx(t *testing.T) {
	ns := namespace(t, "s3-nginx", true, nil)
	role, path := vaultApp(t, ns, "app", "it-works")
	cms := []*corev1.ConfigMap{
		{ObjectMeta: metav1.ObjectMeta{Name: "nginx-templates"}, Data: map[string]string{
			"index.html.ctmpl": `<html>{{ with secret "` + path + `" }}{{ .Data.var }}{{ end }} PLOUPI: {{ env "A_SPECIFIC_VAR" }}</html>`}},
		{ObjectMeta: metav1.ObjectMeta{Name: "app-config"}, Data: map[string]string{"A_SPECIFIC_VAR": "FOOBAR"}},
	}
	for _, cm := range cms {
		if _, err := env.c.Client.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	port := cluster.FreePort()
	pod := httpdPod("nginx", "app", port, map[string]string{
		"vault-injector.io/role":                role,
		"vault-injector.io/templates-configmap": "nginx-templates",
	})
	pod.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "app-config"}}}}
	start := time.Now()
	if _, err := env.c.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod(t, ns, "nginx", 90*time.Second, "app running", running)
	body := get(t, "http://127.0.0.1:"+port+"/index.html")
	t.Logf("pod create -> app serving: %s", time.Since(start).Round(10*time.Millisecond))
	if want := "<html>it-works PLOUPI: FOOBAR</html>"; body != want {
		t.Fatalf("served %q, want %q", body, want)
	}
	narrate(t, ns, "nginx", cms[0].Data["index.html.ctmpl"], body)
}

// narrate prints what `make demo` shows: what the developer wrote, what the webhook added,
// and what the app served.
func narrate(t *testing.T, ns, name, template, body string) {
	t.Helper()
	got, err := env.c.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n--- the developer wrote: pod %s/%s with annotations\n", ns, name)
	var keys []string
	for k := range got.Annotations {
		if strings.HasPrefix(k, "vault-injector.io/") && k != "vault-injector.io/agent-config" && k != "vault-injector.io/status" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "      %s: %s\n", k, got.Annotations[k])
	}
	fmt.Fprintf(&b, "    and the template (ConfigMap) %s\n", template)
	fmt.Fprintf(&b, "--- the webhook added (pod as stored by the API server):\n")
	for _, c := range got.Spec.InitContainers {
		policy := "runs once before the app"
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			policy = "native sidecar (init container, restartPolicy Always): starts first, keeps renewing, does not block Job completion"
		}
		sc := c.SecurityContext
		hardened := sc != nil && sc.RunAsNonRoot != nil && *sc.RunAsNonRoot && sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem &&
			sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation && sc.Capabilities != nil && slices.Contains(sc.Capabilities.Drop, "ALL")
		fmt.Fprintf(&b, "    init container %s (%s): %s\n      requests %s cpu / %s memory; non-root, read-only root, no privilege escalation, drops ALL capabilities: %t\n",
			c.Name, c.Image, policy, c.Resources.Requests.Cpu(), c.Resources.Requests.Memory(), hardened)
	}
	for _, v := range got.Spec.Volumes {
		if strings.HasPrefix(v.Name, "vault-injector") {
			kind := "projected"
			switch {
			case v.EmptyDir != nil:
				kind = "emptyDir medium=" + string(v.EmptyDir.Medium)
			case v.DownwardAPI != nil:
				kind = "downwardAPI (agent config)"
			case v.Projected != nil && len(v.Projected.Sources) > 0 && v.Projected.Sources[0].ServiceAccountToken != nil:
				kind = "projected service-account token, audience " + v.Projected.Sources[0].ServiceAccountToken.Audience
			case v.ConfigMap != nil || v.Projected != nil:
				kind = "ConfigMap (templates)"
			}
			fmt.Fprintf(&b, "    volume %s: %s\n", v.Name, kind)
		}
	}
	for _, c := range got.Spec.Containers {
		for _, m := range c.VolumeMounts {
			if strings.HasPrefix(m.Name, "vault-injector") {
				fmt.Fprintf(&b, "    app container %s mounts %s at %s (read-only %t)\n", c.Name, m.Name, m.MountPath, m.ReadOnly)
			}
		}
	}
	fmt.Fprintf(&b, "--- the app served: %s\n", body)
	t.Log(b.String())
}

// Scenario 4: a service account the role does not allow: the reason is in our container's
// termination message and the app never starts.
func TestUnboundServiceAccount(t *testing.T) {
	ns := namespace(t, "s4-unbound", true, nil)
	role, path := vaultApp(t, ns, "app", "x")
	if _, err := env.c.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "intruder"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := httpdPod("intruder", "intruder", cluster.FreePort(), map[string]string{"vault-injector.io/role": role, "vault-injector.io/secret-app": path})
	if _, err := env.c.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var msg string
	p := waitPod(t, ns, "intruder", 60*time.Second, "termination message from our container", func(p *corev1.Pod) bool {
		for _, s := range p.Status.InitContainerStatuses {
			for _, st := range []corev1.ContainerState{s.State, s.LastTerminationState} {
				if st.Terminated != nil && st.Terminated.Message != "" {
					msg = st.Terminated.Message
					return true
				}
			}
		}
		return false
	})
	want := fmt.Sprintf("Vault role %q at auth/kubernetes does not allow service account %s/intruder", role, ns)
	if !strings.Contains(msg, want) {
		t.Errorf("termination message %q does not contain %q", msg, want)
	}
	for _, s := range p.Status.ContainerStatuses {
		if s.Name == "app" && (s.State.Running != nil || s.State.Terminated != nil || s.LastTerminationState.Terminated != nil) {
			t.Errorf("the app started without its secrets: %+v", s.State)
		}
	}
}

// Scenario 2: Pod Security restricted admits the injected pod and the kubelet starts our
// container under those settings.
func TestPodSecurityRestricted(t *testing.T) {
	ns := namespace(t, "s2-restricted", true, map[string]string{"pod-security.kubernetes.io/enforce": "restricted"})
	uid := int64(1000)
	pod := simplePod("restricted", wantsSecret)
	pod.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsNonRoot: boolp(true), RunAsUser: &uid, SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
	pod.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{AllowPrivilegeEscalation: boolp(false), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}
	pod.Spec.TerminationGracePeriodSeconds = int64p(1)
	created, err := env.c.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("PodSecurity restricted refused the injected pod: %v", err)
	}
	if !injected(created) {
		t.Fatal("pod not injected")
	}
	// On the pod network it cannot reach Vault (everything listens on loopback), so the agent
	// keeps retrying; what matters is that the kubelet started it under restricted settings.
	waitPod(t, ns, "restricted", 60*time.Second, "our container started", func(p *corev1.Pod) bool {
		for _, s := range p.Status.InitContainerStatuses {
			if s.Name == patch.AgentContainer && (s.State.Running != nil || s.LastTerminationState.Terminated != nil) {
				return true
			}
		}
		return false
	})
	// Compare with the same pod without our settings: PodSecurity refuses a root container.
	bad := simplePod("root", nil)
	if _, err := dryRunCreate(t, ns, bad); err == nil || !strings.Contains(err.Error(), "violates PodSecurity") {
		t.Errorf("a non-compliant pod was admitted (err %v): the namespace does not enforce restricted", err)
	}
}

func boolp(b bool) *bool { return &b }

// Scenario 8: a Job whose pod is injected completes: the native sidecar does not keep it alive.
func TestJobCompletes(t *testing.T) {
	ns := namespace(t, "s8-job", true, nil)
	role, path := vaultApp(t, ns, "app", "job-secret")
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "read-secret"},
		Spec: batchv1.JobSpec{
			BackoffLimit: int32p(0),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{"vault-injector.io/role": role, "vault-injector.io/secret-app.json": path}},
				Spec: corev1.PodSpec{
					ServiceAccountName: "app", HostNetwork: true, RestartPolicy: corev1.RestartPolicyNever,
					TerminationGracePeriodSeconds: int64p(2),
					Containers: []corev1.Container{{Name: "app", Image: appImage, ImagePullPolicy: corev1.PullNever,
						Command: []string{"sh", "-c", "grep -q job-secret /vault/secrets/app.json && cat /vault/secrets/app.json"}}},
				},
			},
		},
	}
	if _, err := env.c.Client.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		j, err := env.c.Client.BatchV1().Jobs(ns).Get(ctx, "read-secret", metav1.GetOptions{})
		if err == nil && j.Status.Succeeded == 1 {
			return
		}
		if err == nil && j.Status.Failed > 0 {
			t.Fatalf("job failed: %+v", j.Status)
		}
		if time.Now().After(deadline) {
			pods, _ := env.c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			for i := range pods.Items {
				t.Logf("pod %s: %s", pods.Items[i].Name, describe(&pods.Items[i]))
			}
			t.Fatalf("job did not complete in 90s")
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func int32p(v int32) *int32 { return &v }
