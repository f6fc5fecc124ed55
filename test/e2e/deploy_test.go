//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/vault-injector/vault-injector/test/testkit"
)

const (
	prometheusOperatorVersion = "v0.85.0"
	deployNamespace           = "vault-injector"
)

// warnings collects the API server's warnings (PodSecurity, deprecations) per request.
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	l := w.list
	w.list = nil
	return l
}

// TestDeployManifestsServerSideDryRun renders the Helm chart and the kustomize overlays and has
// the real API server validate every object with a server-side dry-run apply (strict field
// validation: an unknown or misspelled field fails), with cert-manager's CRDs installed from
// its Go module and the target namespace enforcing Pod Security "restricted" (a violating pod
// template comes back as a warning, which fails the test).
func TestDeployManifestsServerSideDryRun(t *testing.T) {
	ctx := context.Background()
	root, err := testkit.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	installCertManagerCRDs(t, ctx)
	// The ServiceMonitor CRD, from the Prometheus Operator's module (downloaded through the Go
	// module proxy, pinned; not a dependency of ours).
	promDir := moduleDownload(t, "github.com/prometheus-operator/prometheus-operator@"+prometheusOperatorVersion)
	installCRDs(t, ctx, []string{filepath.Join(promDir, "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml")})

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: deployNamespace, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "restricted",
	}}}
	if _, err := env.c.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}

	chart := filepath.Join(root, "deploy/helm/vault-injector")
	renderings := []struct {
		name string
		docs func(t *testing.T) []byte
	}{
		{"helm/self-managed", helmTemplate(chart)},
		{"helm/cert-manager", helmTemplate(chart, "--set", "certs.mode=certManager")},
		{"helm/options", helmTemplate(chart, "--set", "networkPolicy.enabled=true", "--set", "serviceMonitor.enabled=true", "--set", "webhook.sidecarStyle=classic",
			"--set", "webhookConfiguration.failurePolicy=Ignore", "--set", "replicaCount=3")},
		{"helm/policy", helmTemplate(chart, "--set", "policy.enabled=true", "--set", "policy.namespaceLabels=true",
			"--set-file", "policy.file="+filepath.Join(root, "deploy/kustomize/components/policy/policy.yaml"))},
		{"kustomize/self-signed", kustomize(filepath.Join(root, "deploy/kustomize/overlays/self-signed"))},
		{"kustomize/cert-manager", kustomize(filepath.Join(root, "deploy/kustomize/overlays/cert-manager"))},
	}
	w := &warnings{}
	cfg := rest.CopyConfig(env.c.Config)
	cfg.WarningHandler = w
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))
	for _, r := range renderings {
		t.Run(r.name, func(t *testing.T) {
			objs := decodeDocs(t, r.docs(t))
			kinds := map[string]int{}
			for _, o := range objs {
				kinds[o.GetKind()]++
				applyDryRun(t, ctx, dyn, mapper, o)
				if ws := w.take(); len(ws) > 0 {
					t.Errorf("%s %s: API server warnings: %s", o.GetKind(), o.GetName(), strings.Join(ws, "; "))
				}
			}
			t.Logf("%d objects validated: %v", len(objs), kinds)
			checkInstall(t, r.name, objs)
		})
	}
}

// checkInstall asserts the operator-facing contract of a rendering.
func checkInstall(t *testing.T, name string, objs []*unstructured.Unstructured) {
	t.Helper()
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	var dep appsv1.Deployment
	var certs []cmapi.Certificate
	for _, o := range objs {
		switch o.GetKind() {
		case "MutatingWebhookConfiguration":
			fromUnstructured(t, o, &mwc)
		case "Deployment":
			fromUnstructured(t, o, &dep)
		case "Certificate":
			var c cmapi.Certificate
			fromUnstructured(t, o, &c)
			certs = append(certs, c)
		}
	}
	if len(mwc.Webhooks) != 1 {
		t.Fatalf("want one MutatingWebhookConfiguration with one webhook, got %d webhooks", len(mwc.Webhooks))
	}
	wh := mwc.Webhooks[0]
	if !slices.Equal(wh.AdmissionReviewVersions, []string{"v1"}) || wh.SideEffects == nil || *wh.SideEffects != admissionregistrationv1.SideEffectClassNone {
		t.Error("webhook must take admission.k8s.io/v1 only and declare sideEffects None")
	}
	if wh.ReinvocationPolicy == nil || *wh.ReinvocationPolicy != admissionregistrationv1.IfNeededReinvocationPolicy {
		t.Error("reinvocationPolicy must be IfNeeded (other webhooks may add containers after us)")
	}
	wantPolicy := admissionregistrationv1.Fail
	if strings.HasSuffix(name, "/options") {
		wantPolicy = admissionregistrationv1.Ignore
	}
	if wh.FailurePolicy == nil || *wh.FailurePolicy != wantPolicy {
		t.Errorf("failurePolicy %v, want %s", wh.FailurePolicy, wantPolicy)
	}
	if wh.TimeoutSeconds == nil || *wh.TimeoutSeconds > 10 {
		t.Error("timeoutSeconds must be set to a few seconds")
	}
	sel := wh.NamespaceSelector
	if sel == nil || sel.MatchLabels["vault-injector.io/inject"] != "enabled" {
		t.Error("namespaceSelector must require vault-injector.io/inject=enabled")
	}
	excluded := false
	for _, e := range sel.MatchExpressions {
		if e.Key == "kubernetes.io/metadata.name" && e.Operator == metav1.LabelSelectorOpNotIn &&
			slices.Contains(e.Values, "kube-system") && slices.Contains(e.Values, deployNamespace) {
			excluded = true
		}
	}
	if !excluded {
		t.Error("namespaceSelector must exclude kube-system and the webhook's own namespace")
	}
	ops := wh.Rules[0].Operations
	if !slices.Equal(ops, []admissionregistrationv1.OperationType{admissionregistrationv1.Create}) || !slices.Equal(wh.Rules[0].Resources, []string{"pods"}) {
		t.Errorf("rules: want CREATE pods, got %v %v", ops, wh.Rules[0].Resources)
	}
	svc := wh.ClientConfig.Service
	if svc == nil || svc.Namespace != deployNamespace || svc.Path == nil || *svc.Path != "/mutate" {
		t.Error("clientConfig must point at the webhook Service's /mutate")
	}

	pod := dep.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("deployment has %d containers", len(pod.Containers))
	}
	args := strings.Join(pod.Containers[0].Args, " ")
	certManager := strings.HasSuffix(name, "cert-manager")
	switch {
	case certManager && !strings.Contains(args, "--cert-mode=files"):
		t.Errorf("cert-manager install must read mounted files: args %s", args)
	case !certManager && !strings.Contains(args, "--cert-mode=self-managed"):
		t.Errorf("default install must manage its own certificate: args %s", args)
	}
	if certManager {
		if len(certs) == 0 {
			t.Fatal("cert-manager install renders no Certificate")
		}
		want := svc.Name + "." + deployNamespace + ".svc"
		var serving *cmapi.Certificate
		for i := range certs {
			if slices.Contains(certs[i].Spec.DNSNames, want) {
				serving = &certs[i]
			}
		}
		if serving == nil {
			t.Fatalf("no Certificate covers %s", want)
		}
		if got := mwc.Annotations["cert-manager.io/inject-ca-from"]; got != deployNamespace+"/"+serving.Name {
			t.Errorf("inject-ca-from %q, want %s/%s", got, deployNamespace, serving.Name)
		}
		for _, m := range pod.Containers[0].VolumeMounts {
			if m.SubPath != "" {
				t.Errorf("mount %s uses subPath: renewed certificates would never reach the pod", m.Name)
			}
		}
	}
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas < 2 {
		t.Error("the webhook must run at least 2 replicas")
	}
}

func fromUnstructured(t *testing.T, o *unstructured.Unstructured, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, into); err != nil {
		t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
	}
}

func helmTemplate(chart string, args ...string) func(t *testing.T) []byte {
	return helmTemplateNS(chart, deployNamespace, args...)
}

// helmTemplateNS renders the chart as release "vault-injector" in namespace.
func helmTemplateNS(chart, namespace string, args ...string) func(t *testing.T) []byte {
	return func(t *testing.T) []byte {
		t.Helper()
		return testkit.HelmTemplate(t, chart, namespace, args...)
	}
}

func kustomize(dir string) func(t *testing.T) []byte {
	return func(t *testing.T) []byte {
		t.Helper()
		k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
		res, err := k.Run(filesys.MakeFsOnDisk(), dir)
		if err != nil {
			t.Fatalf("kustomize %s: %v", dir, err)
		}
		out, err := res.AsYaml()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
}

func decodeDocs(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	return testkit.DecodeDocs(t, data)
}

// applyDryRun sends o as a server-side apply with dryRun=All and strict field validation.
func applyDryRun(t *testing.T, ctx context.Context, dyn dynamic.Interface, mapper meta.RESTMapper, o *unstructured.Unstructured) {
	t.Helper()
	gvk := o.GroupVersionKind()
	m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		t.Errorf("%s %s: the API server does not serve this kind: %v", gvk, o.GetName(), err)
		return
	}
	var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		ns := o.GetNamespace()
		if ns == "" {
			ns = deployNamespace
		}
		ri = dyn.Resource(m.Resource).Namespace(ns)
	}
	body, err := o.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	force := true
	_, err = ri.Patch(ctx, o.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{
		DryRun: []string{metav1.DryRunAll}, FieldManager: "vault-injector-e2e", Force: &force, FieldValidation: "Strict",
	})
	if err != nil {
		t.Errorf("%s %s/%s rejected by the API server: %v", gvk.Kind, o.GetNamespace(), o.GetName(), err)
	}
}

// installCertManagerCRDs creates cert-manager's CRDs from the YAML shipped in its Go module,
// and waits until they are served.
func installCertManagerCRDs(t *testing.T, ctx context.Context) {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/cert-manager/cert-manager").Output()
	if err != nil {
		t.Fatalf("locate the cert-manager module: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(strings.TrimSpace(string(out)), "deploy/crds/*.yaml"))
	if len(files) == 0 {
		t.Fatal("no CRDs in the cert-manager module (deploy/crds)")
	}
	installCRDs(t, ctx, files)
}

// moduleDownload fetches a module version into the module cache and returns its directory.
func moduleDownload(t *testing.T, modAtVersion string) string {
	t.Helper()
	out, err := exec.Command("go", "mod", "download", "-json", modAtVersion).Output()
	if err != nil {
		t.Fatalf("go mod download %s: %v", modAtVersion, err)
	}
	var m struct{ Dir, Error string }
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		t.Fatalf("go mod download %s: %s %v", modAtVersion, m.Error, err)
	}
	return m.Dir
}

// installCRDs creates the CRDs in files and waits until they are served.
func installCRDs(t *testing.T, ctx context.Context, files []string) {
	t.Helper()
	dyn, err := dynamic.NewForConfig(env.c.Config)
	if err != nil {
		t.Fatal(err)
	}
	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	var names []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range decodeDocs(t, b) {
			if o.GetKind() != "CustomResourceDefinition" {
				continue
			}
			if _, err := dyn.Resource(crdGVR).Create(ctx, o, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatalf("create CRD %s: %v", o.GetName(), err)
			}
			names = append(names, o.GetName())
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range names {
		for {
			o, err := dyn.Resource(crdGVR).Get(ctx, n, metav1.GetOptions{})
			if err == nil && established(o) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("CRD %s not established after 30s (%v)", n, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	t.Logf("installed CRDs %s", strings.Join(names, ", "))
}

func established(o *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}
