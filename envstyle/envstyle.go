// Package envstyle decides the env style "auto" stands for: "file" (env[].valueFrom.fileKeyRef)
// only when every node's kubelet can read env files (Kubernetes ≥ 1.35, where EnvFiles is on by
// default), else "exec". Kubelets may be up to three minors older than the API server, and a
// kubelet without EnvFiles starts the container with the variable set to "", silently; so the
// webhook watches the nodes' reported kubelet versions rather than trusting the API server's.
package envstyle

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/vault-injector/vault-injector/agentconfig"
)

// MinFileKubelet is the oldest kubelet whose EnvFiles feature is on by default.
var MinFileKubelet = version.MajorMinor(1, 35)

// Decision is the style for a set of kubelet versions, with the reason in words.
type Decision struct {
	Style  agentconfig.EnvStyle
	Reason string
}

// Decide picks file when there is at least one node and every kubelet is ≥ MinFileKubelet.
// An unparsable version counts as old: exec works on every kubelet.
func Decide(kubelets map[string]string) Decision {
	if len(kubelets) == 0 {
		return Decision{agentconfig.EnvStyleExec, "no nodes seen yet"}
	}
	for node, v := range kubelets {
		pv, err := version.ParseGeneric(v)
		if err != nil {
			return Decision{agentconfig.EnvStyleExec, fmt.Sprintf("node %s reports kubelet version %q, which does not parse", node, v)}
		}
		if pv.LessThan(MinFileKubelet) {
			return Decision{agentconfig.EnvStyleExec, fmt.Sprintf("node %s runs kubelet %s, older than %s", node, v, MinFileKubelet)}
		}
	}
	return Decision{agentconfig.EnvStyleFile, fmt.Sprintf("all %d nodes run kubelet ≥ %s", len(kubelets), MinFileKubelet)}
}

// Watcher keeps the decision current as nodes join, leave and upgrade.
type Watcher struct {
	current  atomic.Pointer[Decision]
	onChange func(Decision)
}

// Style is the current decision's style.
func (w *Watcher) Style() agentconfig.EnvStyle { return w.current.Load().Style }

// Current is the current decision.
func (w *Watcher) Current() Decision { return *w.current.Load() }

// NodesListWatch lists and watches nodes through the core/v1 REST client.
func NodesListWatch(core rest.Interface) cache.ListerWatcher {
	return cache.NewListWatchFromClient(core, "nodes", "", fields.Everything())
}

// Watch starts watching nodes and returns once the first list is in (or fails after timeout:
// without it every pod would get exec, which denies containers that name no command).
// onChange, if set, hears every new decision (a log line).
func Watch(ctx context.Context, nodes cache.ListerWatcher, timeout time.Duration, onChange func(Decision)) (*Watcher, error) {
	w := &Watcher{onChange: onChange}
	w.current.Store(&Decision{agentconfig.EnvStyleExec, "nodes not listed yet"})
	inf := cache.NewSharedIndexInformer(nodes, &corev1.Node{}, 0, cache.Indexers{})
	// Only the version is kept: a large cluster's full Node objects would cost the webhook
	// megabytes for one string each.
	if err := inf.SetTransform(func(obj any) (any, error) {
		if n, ok := obj.(*corev1.Node); ok {
			return &corev1.Node{
				ObjectMeta: metav1.ObjectMeta{Name: n.Name, ResourceVersion: n.ResourceVersion},
				Status:     corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{KubeletVersion: n.Status.NodeInfo.KubeletVersion}},
			}, nil
		}
		return obj, nil
	}); err != nil {
		return nil, err
	}
	recompute := func(any) { w.update(inf.GetStore()) }
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    recompute,
		UpdateFunc: func(_, n any) { recompute(n) },
		DeleteFunc: recompute,
	}); err != nil {
		return nil, err
	}
	go inf.Run(ctx.Done())
	syncCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), inf.HasSynced) {
		return nil, fmt.Errorf("list nodes for --env-style=auto within %s failed: the webhook's service account needs get/list/watch on nodes (the chart grants it with webhook.envStyle: auto), or set --env-style=file or exec", timeout)
	}
	w.update(inf.GetStore())
	return w, nil
}

func (w *Watcher) update(store cache.Store) {
	kubelets := map[string]string{}
	for _, obj := range store.List() {
		if n, ok := obj.(*corev1.Node); ok {
			kubelets[n.Name] = n.Status.NodeInfo.KubeletVersion
		}
	}
	d := Decide(kubelets)
	if old := w.current.Swap(&d); old.Style != d.Style && w.onChange != nil {
		w.onChange(d)
	}
}
