//go:build e2e

package e2e

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/vault-injector/vault-injector/patch"
	"github.com/vault-injector/vault-injector/test/cluster"
)

// Scenario 7: a Deployment's pods, created by the real controllers, are injected and Ready.
func TestDeploymentPodsInjectedAndReady(t *testing.T) {
	ns := namespace(t, "s7-deploy", true, nil)
	role, path := vaultApp(t, ns, "app", "from-deployment")
	port := cluster.FreePort()
	tmpl := httpdPod("", "app", port, map[string]string{"vault-injector.io/role": role, "vault-injector.io/secret-index.html": path})
	tmpl.ObjectMeta.Labels = map[string]string{"app": "web"}
	one := int32(1)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: tmpl.ObjectMeta, Spec: tmpl.Spec},
		},
	}
	if _, err := env.c.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		got, err := env.c.Client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err == nil && got.Status.AvailableReplicas == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deployment not available after 90s: %+v", got.Status)
		}
		time.Sleep(500 * time.Millisecond)
	}
	pods, err := env.c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil || len(pods.Items) != 1 || !injected(&pods.Items[0]) {
		t.Fatalf("deployment pod not injected (err %v)", err)
	}
	if body := get(t, "http://127.0.0.1:"+port+"/index.html"); !strings.Contains(body, `"var": "from-deployment"`) {
		t.Fatalf("served %q", body)
	}
}

// Scenario 9: deleting a running injected pod stops the app first; our sidecar then gets
// SIGTERM and exits cleanly within the grace period.
func TestDeletionOrder(t *testing.T) {
	ns := namespace(t, "s9-delete", true, nil)
	role, path := vaultApp(t, ns, "app", "x")
	pod := httpdPod("bye", "app", cluster.FreePort(), map[string]string{"vault-injector.io/role": role, "vault-injector.io/secret-a": path})
	pod.Spec.Containers[0].Command = []string{"sh", "-c", `trap 'exit 0' TERM; while true; do sleep 0.2; done`}
	pod.Spec.TerminationGracePeriodSeconds = int64p(10)
	if _, err := env.c.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod(t, ns, "bye", 60*time.Second, "app running", running)
	w, err := env.c.Client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", "bye").String()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if err := env.c.Client.CoreV1().Pods(ns).Delete(ctx, "bye", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	var app, agent *corev1.ContainerStateTerminated
	timeout := time.After(30 * time.Second)
loop:
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok || ev.Type == watch.Deleted {
				break loop
			}
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			for _, s := range p.Status.ContainerStatuses {
				if s.Name == "app" && s.State.Terminated != nil {
					app = s.State.Terminated
				}
			}
			for _, s := range p.Status.InitContainerStatuses {
				if s.Name == patch.AgentContainer && s.State.Terminated != nil {
					agent = s.State.Terminated
				}
			}
		case <-timeout:
			t.Fatal("pod not deleted within 30s")
		}
	}
	if app == nil || agent == nil {
		t.Fatalf("did not see both containers terminate: app=%+v agent=%+v", app, agent)
	}
	if agent.ExitCode != 0 {
		t.Errorf("agent exited %d (%s): not a clean shutdown", agent.ExitCode, agent.Message)
	}
	if agent.FinishedAt.Before(&app.FinishedAt) {
		t.Errorf("agent stopped at %s, before the app at %s", agent.FinishedAt, app.FinishedAt)
	}
}

// Scenario 6: with failurePolicy Fail and the webhook down, pods in opted-in namespaces are
// refused with a clear error; other namespaces are unaffected.
func TestWebhookDownFailsClosed(t *testing.T) {
	on := namespace(t, "s6-labelled", true, nil)
	off := namespace(t, "s6-unlabelled", false, nil)
	stopWebhook()
	t.Cleanup(func() {
		if err := restartWebhook(ctx); err != nil {
			t.Fatalf("restart webhook: %v", err)
		}
	})
	_, err := dryRunCreate(t, on, simplePod("refused", wantsSecret))
	if err == nil || !strings.Contains(err.Error(), `failed calling webhook "pods.vault-injector.io"`) {
		t.Fatalf("pod in an opted-in namespace: got %v, want a webhook failure", err)
	}
	if _, err := dryRunCreate(t, off, simplePod("fine", wantsSecret)); err != nil {
		t.Fatalf("pod in another namespace refused: %v", err)
	}
}

// Scenario 5: another mutating webhook (like a mesh injector) adds its init container and
// proxy; both injections land, ours runs first, the pod runs, reinvocation adds nothing twice.
func TestMeshCoexistence(t *testing.T) {
	addr := startMeshWebhook(t)
	url := "https://" + addr + "/mutate"
	none := admissionregistrationv1.SideEffectClassNone
	reinvoke := admissionregistrationv1.IfNeededReinvocationPolicy
	fail := admissionregistrationv1.Fail
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "mesh.example"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "pods.mesh.example",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: env.c.CA.CertPEM},
			Rules:                   []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}, Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}},
			FailurePolicy:           &fail,
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
			ReinvocationPolicy:      &reinvoke,
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"mesh": "on"}},
		}},
	}
	if _, err := env.c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, mwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = env.c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, "mesh.example", metav1.DeleteOptions{})
	})
	ns := namespace(t, "s5-mesh", true, map[string]string{"mesh": "on"})
	role, path := vaultApp(t, ns, "app", "meshed")
	port := cluster.FreePort()
	pod := httpdPod("meshed", "app", port, map[string]string{"vault-injector.io/role": role, "vault-injector.io/secret-index.html": path})
	created, err := env.c.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var inits, mains []string
	for _, c := range created.Spec.InitContainers {
		inits = append(inits, c.Name)
	}
	for _, c := range created.Spec.Containers {
		mains = append(mains, c.Name)
	}
	if strings.Join(inits, ",") != patch.AgentContainer+",mesh-init" || strings.Join(mains, ",") != "app,mesh-proxy" {
		t.Fatalf("init containers %v, containers %v: want ours first, then the mesh's, and its proxy", inits, mains)
	}
	waitPod(t, ns, "meshed", 60*time.Second, "app running", running)
	if body := get(t, "http://127.0.0.1:"+port+"/index.html"); !strings.Contains(body, "meshed") {
		t.Fatalf("served %q", body)
	}
}

// startMeshWebhook serves a tiny mesh-like injector on loopback with a CA-signed certificate.
func startMeshWebhook(t *testing.T) string {
	t.Helper()
	cert, key := filepath.Join(env.dir, "mesh.crt"), filepath.Join(env.dir, "mesh.key")
	if err := env.c.CA.Issue(cert, key, "mesh", nil, false, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(meshMutate), TLSConfig: &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

func meshMutate(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var review struct {
		APIVersion string `json:"apiVersion"`
		Request    struct {
			UID    string     `json:"uid"`
			Object corev1.Pod `json:"object"`
		} `json:"request"`
	}
	if err := json.Unmarshal(body, &review); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	resp := map[string]any{"uid": review.Request.UID, "allowed": true}
	pod := review.Request.Object
	has := false
	for _, c := range pod.Spec.Containers {
		has = has || c.Name == "mesh-proxy"
	}
	if !has {
		initC := corev1.Container{Name: "mesh-init", Image: appImage, ImagePullPolicy: corev1.PullNever, Command: []string{"true"}}
		proxy := corev1.Container{Name: "mesh-proxy", Image: appImage, ImagePullPolicy: corev1.PullNever, Command: []string{"sleep", "3600"}}
		var ops []map[string]any
		if len(pod.Spec.InitContainers) == 0 {
			ops = append(ops, map[string]any{"op": "add", "path": "/spec/initContainers", "value": []any{initC}})
		} else {
			ops = append(ops, map[string]any{"op": "add", "path": "/spec/initContainers/-", "value": initC})
		}
		ops = append(ops, map[string]any{"op": "add", "path": "/spec/containers/-", "value": proxy})
		p, _ := json.Marshal(ops)
		resp["patch"], resp["patchType"] = p, "JSONPatch"
	}
	out, _ := json.Marshal(map[string]any{"apiVersion": review.APIVersion, "kind": "AdmissionReview", "response": resp})
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}
