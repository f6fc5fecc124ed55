package doctor

import (
	"context"
	"fmt"
	"reflect"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
)

// fakeKube puts client-go's fake clientset behind Kube, so unit tests seed objects and
// reactors as usual.
type fakeKube struct{ c *fake.Clientset }

func kubeOf(objs ...runtime.Object) fakeKube { return fakeKube{fake.NewClientset(objs...)} }

func (f fakeKube) Get(ctx context.Context, r Resource, ns, name string, into runtime.Object) error {
	o := metav1.GetOptions{}
	var got runtime.Object
	var err error
	switch r {
	case resPods:
		got, err = f.c.CoreV1().Pods(ns).Get(ctx, name, o)
	case resNamespaces:
		got, err = f.c.CoreV1().Namespaces().Get(ctx, name, o)
	case resServices:
		got, err = f.c.CoreV1().Services(ns).Get(ctx, name, o)
	case resConfigMaps:
		got, err = f.c.CoreV1().ConfigMaps(ns).Get(ctx, name, o)
	case resDeployments:
		got, err = f.c.AppsV1().Deployments(ns).Get(ctx, name, o)
	case resStatefulSets:
		got, err = f.c.AppsV1().StatefulSets(ns).Get(ctx, name, o)
	case resDaemonSets:
		got, err = f.c.AppsV1().DaemonSets(ns).Get(ctx, name, o)
	case resReplicaSets:
		got, err = f.c.AppsV1().ReplicaSets(ns).Get(ctx, name, o)
	case resJobs:
		got, err = f.c.BatchV1().Jobs(ns).Get(ctx, name, o)
	case resCronJobs:
		got, err = f.c.BatchV1().CronJobs(ns).Get(ctx, name, o)
	case resWebhookConfigs:
		got, err = f.c.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, name, o)
	default:
		return fmt.Errorf("fakeKube: get %+v", r)
	}
	return assign(got, err, into)
}

func (f fakeKube) List(ctx context.Context, r Resource, ns, sel string, into runtime.Object) error {
	o := metav1.ListOptions{LabelSelector: sel}
	var got runtime.Object
	var err error
	switch r {
	case resPods:
		got, err = f.c.CoreV1().Pods(ns).List(ctx, o)
	case resWebhookConfigs:
		got, err = f.c.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, o)
	default:
		return fmt.Errorf("fakeKube: list %+v", r)
	}
	return assign(got, err, into)
}

func (f fakeKube) Create(ctx context.Context, r Resource, ns, name string, obj, into runtime.Object, dryRun bool) error {
	var got runtime.Object
	var err error
	switch r {
	case resPods:
		o := metav1.CreateOptions{}
		if dryRun {
			o.DryRun = []string{metav1.DryRunAll}
		}
		got, err = f.c.CoreV1().Pods(ns).Create(ctx, obj.(*corev1.Pod), o)
	case resTokenRequest:
		got, err = f.c.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, obj.(*authenticationv1.TokenRequest), metav1.CreateOptions{})
	case resTokenReviews:
		got, err = f.c.AuthenticationV1().TokenReviews().Create(ctx, obj.(*authenticationv1.TokenReview), metav1.CreateOptions{})
	default:
		return fmt.Errorf("fakeKube: create %+v", r)
	}
	return assign(got, err, into)
}

func (f fakeKube) Logs(ctx context.Context, ns, pod, container string, tail int64) ([]byte, error) {
	return f.c.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Container: container, TailLines: &tail}).DoRaw(ctx)
}

// assign copies the typed answer into the caller's object.
func assign(got runtime.Object, err error, into runtime.Object) error {
	if err != nil {
		return err
	}
	if got == nil || reflect.ValueOf(got).IsNil() {
		return fmt.Errorf("fakeKube: no object")
	}
	reflect.ValueOf(into).Elem().Set(reflect.ValueOf(got).Elem())
	return nil
}
