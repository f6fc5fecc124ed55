package policyload

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// NamespacesListWatch lists and watches namespaces through the core/v1 REST client.
func NamespacesListWatch(core rest.Interface) cache.ListerWatcher {
	return cache.NewListWatchFromClient(core, "namespaces", "", fields.Everything())
}

// WatchNamespaces keeps the cluster's namespace labels in memory (an AdmissionReview carries
// none) and returns a lookup for policy rules that match by namespaceSelector. It needs
// list/watch on namespaces, which is why it is opt-in. Unknown namespaces give nil.
func WatchNamespaces(ctx context.Context, lw cache.ListerWatcher, wait time.Duration) func(string) map[string]string {
	inf := cache.NewSharedIndexInformer(lw, &corev1.Namespace{}, 0, cache.Indexers{})
	// Only the labels are kept.
	_ = inf.SetTransform(func(o any) (any, error) {
		if n, ok := o.(*corev1.Namespace); ok {
			n.ManagedFields, n.Annotations, n.Spec, n.Status = nil, nil, corev1.NamespaceSpec{}, corev1.NamespaceStatus{}
		}
		return o, nil
	})
	go inf.Run(ctx.Done())
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	cache.WaitForCacheSync(wctx.Done(), inf.HasSynced)
	return func(ns string) map[string]string {
		o, ok, err := inf.GetStore().GetByKey(ns)
		if err != nil || !ok {
			return nil
		}
		if n, ok := o.(*corev1.Namespace); ok {
			return n.Labels
		}
		return nil
	}
}
