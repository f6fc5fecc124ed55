package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"path"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"

	"github.com/vault-injector/vault-injector/internal/kubeclient"
)

// Kube is the Kubernetes API as doctor uses it. The binary talks to the API server through a
// REST client that knows only the five API groups doctor reads: client-go's clientset would
// link every API group of Kubernetes into the binary (24 → 52 MB) and register them all at
// every start of the webhook. Tests put client-go's fake clientset behind this interface.
type Kube interface {
	Get(ctx context.Context, r Resource, ns, name string, into runtime.Object) error
	List(ctx context.Context, r Resource, ns, labelSelector string, into runtime.Object) error
	// Create posts obj to r (name set: r's subresource of that object, e.g. a TokenRequest).
	Create(ctx context.Context, r Resource, ns, name string, obj, into runtime.Object, dryRun bool) error
	Logs(ctx context.Context, ns, pod, container string, tailLines int64) ([]byte, error)
}

// Resource is an API resource. Kind and APIVersion (default Group/Version) are what a created
// object declares.
type Resource struct {
	Group, Version, Resource, Subresource string
	Kind, APIVersion                      string
	Cluster                               bool
}

var (
	resPods           = Resource{Version: "v1", Resource: "pods", Kind: "Pod"}
	resNamespaces     = Resource{Version: "v1", Resource: "namespaces", Cluster: true}
	resServices       = Resource{Version: "v1", Resource: "services"}
	resConfigMaps     = Resource{Version: "v1", Resource: "configmaps"}
	resTokenRequest   = Resource{Version: "v1", Resource: "serviceaccounts", Subresource: "token", Kind: "TokenRequest", APIVersion: "authentication.k8s.io/v1"}
	resTokenReviews   = Resource{Group: "authentication.k8s.io", Version: "v1", Resource: "tokenreviews", Kind: "TokenReview", Cluster: true}
	resDeployments    = Resource{Group: "apps", Version: "v1", Resource: "deployments"}
	resStatefulSets   = Resource{Group: "apps", Version: "v1", Resource: "statefulsets"}
	resDaemonSets     = Resource{Group: "apps", Version: "v1", Resource: "daemonsets"}
	resReplicaSets    = Resource{Group: "apps", Version: "v1", Resource: "replicasets"}
	resJobs           = Resource{Group: "batch", Version: "v1", Resource: "jobs"}
	resCronJobs       = Resource{Group: "batch", Version: "v1", Resource: "cronjobs"}
	resWebhookConfigs = Resource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "mutatingwebhookconfigurations", Cluster: true}
)

// codecs are those of the groups doctor reads (internal/kubeclient: built on first use, so the
// webhook does not pay for them at every start).
func codecs() serializer.CodecFactory {
	_, c := kubeclient.Scheme()
	return c
}

// NewKube is the API server of cfg, for doctor.
func NewKube(cfg *rest.Config) (Kube, error) {
	rc, err := restClient(cfg)
	if err != nil {
		return nil, err
	}
	return restKube{rc}, nil
}

func restClient(cfg *rest.Config) (*rest.RESTClient, error) {
	c := rest.CopyConfig(cfg)
	c.NegotiatedSerializer = codecs().WithoutConversion()
	c.AcceptContentTypes, c.ContentType = "application/json", "application/json"
	if c.UserAgent == "" {
		c.UserAgent = "vault-injector-doctor"
	}
	return rest.UnversionedRESTClientFor(c)
}

type restKube struct{ rc *rest.RESTClient }

// apiPath is /api/v1 or /apis/GROUP/VERSION, then the namespace, resource, name, subresource.
func apiPath(r Resource, ns, name string) string {
	p := "/api/" + r.Version
	if r.Group != "" {
		p = "/apis/" + r.Group + "/" + r.Version
	}
	if !r.Cluster && ns != "" {
		p = path.Join(p, "namespaces", ns)
	}
	p = path.Join(p, r.Resource)
	if name != "" {
		p = path.Join(p, name)
		if r.Subresource != "" {
			p = path.Join(p, r.Subresource)
		}
	}
	return p
}

func (k restKube) Get(ctx context.Context, r Resource, ns, name string, into runtime.Object) error {
	return k.rc.Get().AbsPath(apiPath(r, ns, name)).Do(ctx).Into(into)
}

func (k restKube) List(ctx context.Context, r Resource, ns, sel string, into runtime.Object) error {
	req := k.rc.Get().AbsPath(apiPath(r, ns, ""))
	if sel != "" {
		req = req.Param("labelSelector", sel)
	}
	return req.Do(ctx).Into(into)
}

func (k restKube) Create(ctx context.Context, r Resource, ns, name string, obj, into runtime.Object, dryRun bool) error {
	gv := r.APIVersion
	switch {
	case gv != "":
	case r.Group == "":
		gv = r.Version
	default:
		gv = r.Group + "/" + r.Version
	}
	body, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return err
	}
	m["apiVersion"], m["kind"] = gv, r.Kind
	if body, err = json.Marshal(m); err != nil {
		return err
	}
	req := k.rc.Post().AbsPath(apiPath(r, ns, name)).SetHeader("Content-Type", "application/json").Body(body)
	if dryRun {
		req = req.Param("dryRun", metav1.DryRunAll)
	}
	return req.Do(ctx).Into(into)
}

func (k restKube) Logs(ctx context.Context, ns, pod, container string, tail int64) ([]byte, error) {
	return k.rc.Get().AbsPath(apiPath(resPods, ns, pod), "log").
		Param("container", container).Param("tailLines", fmt.Sprint(tail)).DoRaw(ctx)
}

// get reads one object of type T.
func get[T any, PT interface {
	*T
	runtime.Object
}](ctx context.Context, k Kube, r Resource, ns, name string) (PT, error) {
	var v T
	p := PT(&v)
	if err := k.Get(ctx, r, ns, name, p); err != nil {
		return nil, err
	}
	return p, nil
}

// list reads a list of type L.
func list[L any, PL interface {
	*L
	runtime.Object
}](ctx context.Context, k Kube, r Resource, ns, sel string) (PL, error) {
	var v L
	p := PL(&v)
	if err := k.List(ctx, r, ns, sel, p); err != nil {
		return nil, err
	}
	return p, nil
}
