// Package kubeclient builds REST clients for the few Kubernetes API groups this binary talks to
// (core, admissionregistration, apps, batch, authentication), with a scheme that holds only
// those groups and is built on first use. client-go's typed clientset registers every API group
// in an init function: linked in, it cost every face of the binary, the agent's start included,
// about 2 ms of start-up and doubled the binary's size.
package kubeclient

import (
	"fmt"
	"sync"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

var (
	schemeOnce sync.Once
	scheme     *runtime.Scheme
	codecs     serializer.CodecFactory
)

// Scheme holds the groups this binary uses, registered on first call.
func Scheme() (*runtime.Scheme, serializer.CodecFactory) {
	schemeOnce.Do(func() {
		scheme = runtime.NewScheme()
		for _, add := range []func(*runtime.Scheme) error{
			corev1.AddToScheme, admissionregistrationv1.AddToScheme, appsv1.AddToScheme,
			batchv1.AddToScheme, authenticationv1.AddToScheme,
		} {
			// Only a programming error (two types under one name) makes this fail.
			if err := add(scheme); err != nil {
				panic(err)
			}
		}
		metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
		codecs = serializer.NewCodecFactory(scheme)
	})
	return scheme, codecs
}

// Config is the kubeconfig file when given, else the in-cluster config; what names the
// feature that needs the API, for the error.
func Config(kubeconfig, what, userAgent string) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig=%q: %w", kubeconfig, err)
		}
	} else if cfg, err = rest.InClusterConfig(); err != nil {
		return nil, fmt.Errorf("%s needs the Kubernetes API: not running in a pod (%w); set --kubeconfig", what, err)
	}
	cfg.UserAgent = userAgent
	return cfg, nil
}

// For returns a REST client for one group version (corev1.SchemeGroupVersion, …) of Scheme.
func For(cfg *rest.Config, gv schema.GroupVersion) (*rest.RESTClient, error) {
	_, cf := Scheme()
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &gv
	c.APIPath = "/apis"
	if gv.Group == "" {
		c.APIPath = "/api"
	}
	c.NegotiatedSerializer = cf.WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client for %s: %w", gv, err)
	}
	return rc, nil
}
