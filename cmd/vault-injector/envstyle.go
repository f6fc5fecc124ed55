package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"

	"github.com/vault-injector/vault-injector/agentconfig"
	"github.com/vault-injector/vault-injector/envstyle"
	"github.com/vault-injector/vault-injector/internal/kubeclient"
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
	core, err := kubeclient.For(cfg, corev1.SchemeGroupVersion)
	if err != nil {
		return fmt.Errorf("--env-style=auto: %w", err)
	}
	w, err := envstyle.Watch(ctx, envstyle.NodesListWatch(core), nodeListTimeout, func(d envstyle.Decision) {
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
	return kubeclient.Config(kubeconfig, what, "vault-injector/"+version)
}
