package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/vault-injector/vault-injector/agentconfig"
	"github.com/vault-injector/vault-injector/envstyle"
	"github.com/vault-injector/vault-injector/webhook"
)

// nodeListTimeout bounds the start-up wait for the first list of nodes (--env-style=auto).
var nodeListTimeout = 30 * time.Second

// watchEnvStyle makes m follow the nodes' kubelet versions when --env-style=auto.
func watchEnvStyle(ctx context.Context, m *webhook.Mutator, auto bool, kubeconfig string, log *slog.Logger) error {
	if !auto {
		return nil
	}
	cfg, err := restConfig(kubeconfig, "--env-style=auto")
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("--env-style=auto: %w", err)
	}
	w, err := envstyle.Watch(ctx, client, nodeListTimeout, func(d envstyle.Decision) {
		log.Info("env style changed", "env_style", string(d.Style), "reason", d.Reason)
	})
	if err != nil {
		return err
	}
	d := w.Current()
	log.Info("env style auto", "env_style", string(d.Style), "reason", d.Reason)
	m.EnvStyle = w.Style
	return nil
}

// offlineEnvStyle is what auto means for `inject`, which has no nodes to ask: file (the flag's
// help says so; --env-style=exec previews an older cluster).
func offlineEnvStyle(m *webhook.Mutator, auto bool) {
	if auto {
		m.Settings.EnvStyle = agentconfig.EnvStyleFile
	}
}

// restConfig is the kubeconfig file when given, else the in-cluster config.
func restConfig(kubeconfig, what string) (*rest.Config, error) {
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
	cfg.UserAgent = "vault-injector/" + version
	return cfg, nil
}
