package policyload

import (
	"context"
	"time"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// WatchNamespaces keeps the cluster's namespace labels in memory (an AdmissionReview carries
// none) and returns a lookup for policy rules that match by namespaceSelector. It needs
// list/watch on namespaces, which is why it is opt-in. Unknown namespaces give nil.
func WatchNamespaces(ctx context.Context, client kubernetes.Interface, wait time.Duration) func(string) map[string]string {
	f := informers.NewSharedInformerFactory(client, 0)
	lister := f.Core().V1().Namespaces().Lister()
	inf := f.Core().V1().Namespaces().Informer()
	f.Start(ctx.Done())
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	cache.WaitForCacheSync(wctx.Done(), inf.HasSynced)
	return func(ns string) map[string]string {
		n, err := lister.Get(ns)
		if err != nil {
			return nil
		}
		return n.Labels
	}
}
