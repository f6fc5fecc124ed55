package certs

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// fakeAPI is client-go's fake clientset plus what the real API server does and the fake does
// not: resourceVersions, optimistic concurrency (409 Conflict on a stale resourceVersion in an
// update or in a patch body). It counts successful writes and lets a test act just before a
// write is applied (to play another replica).
type fakeAPI struct {
	*fake.Clientset
	mu sync.Mutex
	rv int

	writes   map[string]int // "create secrets", "update secrets", "patch mutatingwebhookconfigurations"
	attempts map[string]int
	// beforeWrite, if set, runs (under the lock) before an update or patch is checked and
	// applied; it may change stored objects with f.touch.
	beforeWrite func(verb, resource string)
}

var (
	secretsGVR = corev1.SchemeGroupVersion.WithResource("secrets")
	mwcGVR     = admissionregistrationv1.SchemeGroupVersion.WithResource("mutatingwebhookconfigurations")
)

const (
	testNS      = "vault-injector"
	testSvc     = "vault-injector"
	testSecret  = "vault-injector-tls"
	testWebhook = "vault-injector"
	testDNS     = "vault-injector.vault-injector.svc"
)

func newFakeAPI(t *testing.T, objs ...runtime.Object) *fakeAPI {
	t.Helper()
	f := &fakeAPI{Clientset: fake.NewClientset(), writes: map[string]int{}, attempts: map[string]int{}}
	for _, o := range objs {
		f.setRV(o)
		if err := f.Tracker().Add(o); err != nil {
			t.Fatal(err)
		}
	}
	f.PrependReactor("create", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.attempts["create "+a.GetResource().Resource]++
		obj := a.(k8stesting.CreateAction).GetObject().DeepCopyObject()
		f.setRV(obj)
		if err := f.Tracker().Create(a.GetResource(), obj, a.GetNamespace()); err != nil {
			return true, nil, err
		}
		f.writes["create "+a.GetResource().Resource]++
		return true, obj, nil
	})
	f.PrependReactor("update", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.attempts["update "+a.GetResource().Resource]++
		if f.beforeWrite != nil {
			f.beforeWrite("update", a.GetResource().Resource)
		}
		obj := a.(k8stesting.UpdateAction).GetObject().DeepCopyObject()
		m, _ := meta.Accessor(obj)
		if err := f.checkRV(a.GetResource(), a.GetNamespace(), m.GetName(), m.GetResourceVersion()); err != nil {
			return true, nil, err
		}
		f.setRV(obj)
		if err := f.Tracker().Update(a.GetResource(), obj, a.GetNamespace()); err != nil {
			return true, nil, err
		}
		f.writes["update "+a.GetResource().Resource]++
		return true, obj, nil
	})
	f.PrependReactor("patch", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.attempts["patch "+a.GetResource().Resource]++
		if f.beforeWrite != nil {
			f.beforeWrite("patch", a.GetResource().Resource)
		}
		pa := a.(k8stesting.PatchAction)
		var body struct {
			Metadata struct {
				ResourceVersion string `json:"resourceVersion"`
			} `json:"metadata"`
		}
		_ = json.Unmarshal(pa.GetPatch(), &body)
		if rv := body.Metadata.ResourceVersion; rv != "" {
			if err := f.checkRV(a.GetResource(), a.GetNamespace(), pa.GetName(), rv); err != nil {
				return true, nil, err
			}
		}
		// Apply it as the fake does (strategic merge with the typed object), then stamp a new
		// resourceVersion.
		if _, _, err := k8stesting.ObjectReaction(f.Tracker())(a); err != nil {
			return true, nil, err
		}
		obj, err := f.Tracker().Get(a.GetResource(), a.GetNamespace(), pa.GetName())
		if err != nil {
			return true, nil, err
		}
		f.setRV(obj)
		if err := f.Tracker().Update(a.GetResource(), obj, a.GetNamespace()); err != nil {
			return true, nil, err
		}
		f.writes["patch "+a.GetResource().Resource]++
		return true, obj, nil
	})
	return f
}

func (f *fakeAPI) checkRV(gvr schema.GroupVersionResource, ns, name, rv string) error {
	cur, err := f.Tracker().Get(gvr, ns, name)
	if err != nil {
		return err
	}
	cm, _ := meta.Accessor(cur)
	if rv != cm.GetResourceVersion() {
		return apierrors.NewConflict(gvr.GroupResource(), name, errStale)
	}
	return nil
}

var errStale = staleError{}

type staleError struct{}

func (staleError) Error() string {
	return "the object has been modified; please apply your changes to the latest version and try again"
}

func (f *fakeAPI) setRV(obj runtime.Object) {
	f.rv++
	m, _ := meta.Accessor(obj)
	m.SetResourceVersion(strconv.Itoa(f.rv))
}

// touch changes a stored object behind everyone's back (another writer): it gains a label and
// a new resourceVersion. Call it with f.mu held (from beforeWrite) or via touchLocked.
func (f *fakeAPI) touch(t *testing.T, gvr schema.GroupVersionResource, ns, name string) {
	t.Helper()
	obj, err := f.Tracker().Get(gvr, ns, name)
	if err != nil {
		t.Error(err)
		return
	}
	m, _ := meta.Accessor(obj)
	labels := m.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels["touched"] = strconv.Itoa(f.rv)
	m.SetLabels(labels)
	f.setRV(obj)
	if err := f.Tracker().Update(gvr, obj, ns); err != nil {
		t.Error(err)
	}
}

func (f *fakeAPI) count(verb, resource string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.writes[verb+" "+resource]
}

func (f *fakeAPI) tries(verb, resource string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts[verb+" "+resource]
}

func (f *fakeAPI) secret(t *testing.T) *corev1.Secret {
	t.Helper()
	o, err := f.Tracker().Get(secretsGVR, testNS, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return o.(*corev1.Secret)
}

func (f *fakeAPI) mwc(t *testing.T) *admissionregistrationv1.MutatingWebhookConfiguration {
	t.Helper()
	o, err := f.Tracker().Get(mwcGVR, "", testWebhook)
	if err != nil {
		t.Fatal(err)
	}
	return o.(*admissionregistrationv1.MutatingWebhookConfiguration)
}

// bundle is the caBundle of our configuration, failing the test unless every webhook has it.
func (f *fakeAPI) bundle(t *testing.T) []byte {
	t.Helper()
	mwc := f.mwc(t)
	var b []byte
	for i, wh := range mwc.Webhooks {
		if i > 0 && !bytes.Equal(wh.ClientConfig.CABundle, b) {
			t.Fatalf("webhooks %s and %s have different caBundles", mwc.Webhooks[0].Name, wh.Name)
		}
		b = wh.ClientConfig.CABundle
	}
	if len(b) == 0 {
		t.Fatal("caBundle is empty")
	}
	return b
}

// webhookConfig is our configuration as installed: two webhooks, no caBundle yet.
func webhookConfig() *admissionregistrationv1.MutatingWebhookConfiguration {
	path := "/mutate"
	svc := &admissionregistrationv1.ServiceReference{Namespace: testNS, Name: testSvc, Path: &path}
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: testWebhook},
		Webhooks: []admissionregistrationv1.MutatingWebhook{
			{Name: "pods.vault-injector.io", ClientConfig: admissionregistrationv1.WebhookClientConfig{Service: svc}},
			{Name: "other.vault-injector.io", ClientConfig: admissionregistrationv1.WebhookClientConfig{Service: svc}},
		},
	}
}

// fakeClock is a settable clock shared by replicas.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// logBuffer collects the logs of several replicas safely.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testLogger logs to the buffer and, on failure, shows the logs.
func testLogger(t *testing.T) (*slog.Logger, *logBuffer) {
	t.Helper()
	b := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", b.String())
		}
	})
	return slogTo(b), b
}

func slogTo(b *logBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// gatedClient calls gate after every Secret get returns, outside the fake's lock (the fake
// runs one action at a time), so a test can line replicas up between their get and create.
type gatedClient struct {
	*fakeAPI
	gate func()
}

// GetSecret reads, then waits at the gate: two replicas both see "not found" before either
// creates.
func (c gatedClient) GetSecret(ctx context.Context, ns, name string) (*corev1.Secret, error) {
	sec, err := c.fakeAPI.GetSecret(ctx, ns, name)
	c.gate()
	return sec, err
}

// The API methods, over the embedded fake clientset (certstest.Clientset does the same for
// other packages; importing it here would be an import cycle).

func (f *fakeAPI) GetSecret(ctx context.Context, ns, name string) (*corev1.Secret, error) {
	return f.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
}

func (f *fakeAPI) CreateSecret(ctx context.Context, s *corev1.Secret) error {
	_, err := f.CoreV1().Secrets(s.Namespace).Create(ctx, s, metav1.CreateOptions{FieldManager: FieldManager})
	return err
}

func (f *fakeAPI) UpdateSecret(ctx context.Context, s *corev1.Secret) error {
	_, err := f.CoreV1().Secrets(s.Namespace).Update(ctx, s, metav1.UpdateOptions{FieldManager: FieldManager})
	return err
}

func (f *fakeAPI) GetWebhookConfig(ctx context.Context, name string) (*admissionregistrationv1.MutatingWebhookConfiguration, error) {
	return f.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
}

func (f *fakeAPI) PatchWebhookConfig(ctx context.Context, name string, patch []byte) error {
	_, err := f.AdmissionregistrationV1().MutatingWebhookConfigurations().Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{FieldManager: FieldManager})
	return err
}
