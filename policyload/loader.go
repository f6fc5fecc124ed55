// Package policyload owns keeping the webhook's admission policy current: it watches one
// ConfigMap through the API (a ConfigMap volume would take a minute or two to follow a change),
// parses the policy key on every change and swaps it in, and keeps the last good policy when a
// new one does not parse or validate, with a log line and a metric. It also serves namespace
// labels to rules that match by namespaceSelector, when the operator opted in.
package policyload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/vault-injector/vault-injector/policy"
)

// Options name the ConfigMap and what the webhook can serve.
type Options struct {
	Namespace, Name string
	// Key is the ConfigMap key holding the policy file.
	Key string
	// NamespaceLabels says whether the webhook reads namespaces; a policy with
	// namespaceSelector rules is refused without it, since those rules could never match.
	NamespaceLabels bool
}

// Loader holds the policy in force. The zero state is "configured, nothing loaded yet".
type Loader struct {
	opts    Options
	log     *slog.Logger
	current atomic.Pointer[policy.Policy]
	// version is the ConfigMap resourceVersion last looked at, so a resync does not re-parse
	// or re-log an unchanged object.
	version atomic.Value
	reloads *prometheus.CounterVec
	inForce prometheus.Gauge
}

// New returns a Loader registering its metrics on reg.
func New(opts Options, log *slog.Logger, reg prometheus.Registerer) *Loader {
	l := &Loader{
		opts: opts,
		log:  log,
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vault_injector_policy_reloads_total",
			Help: "Admission-policy versions read from the ConfigMap, by result: loaded, or refused (did not parse or validate; the last good policy stays).",
		}, []string{"result"}),
		inForce: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vault_injector_policy_loaded",
			Help: "1 once a valid admission policy is in force; 0 while none has loaded (pods asking for injection are denied).",
		}),
	}
	l.version.Store("")
	if reg != nil {
		reg.MustRegister(l.reloads, l.inForce)
	}
	return l
}

// Policy is the policy in force; loaded is false until one valid version was read.
func (l *Loader) Policy() (*policy.Policy, bool) {
	p := l.current.Load()
	return p, p != nil
}

// ConfigMapListWatch lists and watches the one ConfigMap of opts through the core/v1 REST
// client (by name: the RBAC Role can then name it in resourceNames).
func ConfigMapListWatch(core rest.Interface, opts Options) cache.ListerWatcher {
	return cache.NewListWatchFromClient(core, "configmaps", opts.Namespace, fields.OneTermEqualSelector("metadata.name", opts.Name))
}

// Start watches the ConfigMap (ConfigMapListWatch) until ctx ends. It waits up to wait for the
// first list, so a webhook that starts with a valid policy in place serves with it from its
// first request.
func (l *Loader) Start(ctx context.Context, lw cache.ListerWatcher, wait time.Duration) {
	inf := cache.NewSharedIndexInformer(lw, &corev1.ConfigMap{}, 0, cache.Indexers{})
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { l.observe(o) },
		UpdateFunc: func(_, o any) { l.observe(o) },
		DeleteFunc: func(any) {
			l.log.Warn("policy ConfigMap deleted: the last good policy stays in force", "configmap", l.opts.Namespace+"/"+l.opts.Name)
		},
	})
	go inf.Run(ctx.Done())
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if !cache.WaitForCacheSync(wctx.Done(), inf.HasSynced) {
		l.log.Warn("policy ConfigMap not listed yet: pods asking for injection are denied until a valid policy loads", "configmap", l.opts.Namespace+"/"+l.opts.Name)
	}
	if _, ok := l.Policy(); !ok {
		l.log.Warn("no valid policy loaded yet: pods asking for injection are denied until one does", "configmap", l.opts.Namespace+"/"+l.opts.Name)
	}
}

func (l *Loader) observe(o any) {
	cm, ok := o.(*corev1.ConfigMap)
	// The field selector already narrows the watch to our ConfigMap; checking the name again
	// costs nothing and holds whatever the API server or a fake does with the selector.
	if !ok || cm.Name != l.opts.Name || cm.Namespace != l.opts.Namespace {
		return
	}
	if l.version.Swap(cm.ResourceVersion) == cm.ResourceVersion {
		return
	}
	l.Apply(cm)
}

// Apply reads one version of the ConfigMap: a valid policy replaces the one in force, anything
// else is refused, logged and counted, and the last good policy stays.
func (l *Loader) Apply(cm *corev1.ConfigMap) {
	where := []any{"configmap", cm.Namespace + "/" + cm.Name, "resource_version", cm.ResourceVersion}
	p, err := l.parse(cm)
	if err != nil {
		l.reloads.WithLabelValues("refused").Inc()
		_, had := l.Policy()
		l.log.Error("policy refused: the last good policy stays in force", append(where, "error", err.Error(), "policy_in_force", had)...)
		return
	}
	l.current.Store(p)
	l.inForce.Set(1)
	l.reloads.WithLabelValues("loaded").Inc()
	l.log.Info("policy loaded", append(where, "rules", len(p.Rules))...)
}

func (l *Loader) parse(cm *corev1.ConfigMap) (*policy.Policy, error) {
	data, ok := cm.Data[l.opts.Key]
	if !ok {
		return nil, fmt.Errorf("ConfigMap has no key %q: expected the policy file under it", l.opts.Key)
	}
	p, err := policy.Parse([]byte(data))
	if err != nil {
		return nil, err
	}
	if p.UsesNamespaceSelector() && !l.opts.NamespaceLabels {
		return nil, errors.New("a rule matches by namespaceSelector, but the webhook does not read namespace labels: start it with --policy-namespace-labels (chart: policy.namespaceLabels=true), which needs list/watch on namespaces")
	}
	return p, nil
}
