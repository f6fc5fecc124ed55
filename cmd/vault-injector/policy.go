package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"

	"github.com/vault-injector/vault-injector/internal/kubeclient"
	"github.com/vault-injector/vault-injector/policyload"
	"github.com/vault-injector/vault-injector/webhook"
)

// policyWait bounds how long start-up waits for the policy ConfigMap's first list.
const policyWait = 10 * time.Second

// policyFlags are the admission-policy settings of `webhook`.
type policyFlags struct {
	configMap, key  string
	namespaceLabels bool
}

func (p *policyFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.configMap, "policy-configmap", "", "ConfigMap holding the admission policy, as <namespace>/<name> or <name> (the webhook's namespace), watched through the API and reloaded within seconds; once set, what no rule allows is denied (empty: no policy)")
	fs.StringVar(&p.key, "policy-key", "policy.yaml", "key of --policy-configmap holding the policy file")
	fs.BoolVar(&p.namespaceLabels, "policy-namespace-labels", false, "read namespace labels (list/watch namespaces) for policy rules that match by namespaceSelector")
}

// start loads the policy into m when one is configured. kubeconfig is the webhook's
// --kubeconfig (empty: in-cluster).
func (p *policyFlags) start(ctx context.Context, m *webhook.Mutator, kubeconfig string, reg prometheus.Registerer, log *slog.Logger) error {
	if p.configMap == "" {
		if p.namespaceLabels {
			return errors.New("--policy-namespace-labels needs --policy-configmap")
		}
		return nil
	}
	if p.key == "" {
		return errors.New("--policy-key is empty: expected the ConfigMap key of the policy file")
	}
	ns, name, err := p.location()
	if err != nil {
		return err
	}
	cfg, err := restConfig(kubeconfig, "--policy-configmap")
	if err != nil {
		return err
	}
	core, err := kubeclient.For(cfg, corev1.SchemeGroupVersion)
	if err != nil {
		return err
	}
	opts := policyload.Options{Namespace: ns, Name: name, Key: p.key, NamespaceLabels: p.namespaceLabels}
	l := policyload.New(opts, log, reg)
	l.Start(ctx, policyload.ConfigMapListWatch(core, opts), policyWait)
	m.Policy = l
	if p.namespaceLabels {
		m.NamespaceLabels = policyload.WatchNamespaces(ctx, policyload.NamespacesListWatch(core), policyWait)
	}
	log.Info("admission policy from ConfigMap", "configmap", ns+"/"+name, "key", p.key, "namespace_labels", p.namespaceLabels)
	return nil
}

// location splits --policy-configmap, defaulting the namespace to the webhook's own.
func (p *policyFlags) location() (ns, name string, err error) {
	ns, name, ok := strings.Cut(p.configMap, "/")
	if !ok {
		ns, name = "", p.configMap
		ns = strings.TrimSpace(os.Getenv("POD_NAMESPACE"))
		if ns == "" {
			b, rerr := os.ReadFile(serviceAccountNamespaceFile)
			if rerr != nil {
				return "", "", fmt.Errorf("--policy-configmap=%q names no namespace, POD_NAMESPACE is unset and the pod's namespace is unknown (%v): give <namespace>/<name>", p.configMap, rerr)
			}
			ns = strings.TrimSpace(string(b))
		}
	}
	if ns == "" || name == "" || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("--policy-configmap=%q: expected <namespace>/<name> or <name>", p.configMap)
	}
	return ns, name, nil
}
