package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/vault-injector/vault-injector/agentconfig"
	"github.com/vault-injector/vault-injector/patch"
	"github.com/vault-injector/vault-injector/webhook"
)

// envName is the environment variable that overrides a flag: --vault-address →
// VAULT_INJECTOR_VAULT_ADDRESS.
func envName(flagName string) string {
	return "VAULT_INJECTOR_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// newFlagSet returns a flag set whose usage lists each flag's env override.
func newFlagSet(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage: vault-injector %s\n\nFlags (each can also be set by the environment variable shown):\n", synopsis)
		fs.VisitAll(func(f *flag.Flag) {
			def := ""
			if f.DefValue != "" {
				def = fmt.Sprintf(" (default %q)", f.DefValue)
			}
			fmt.Fprintf(out, "  --%s%s  [$%s]\n      %s\n", f.Name, def, envName(f.Name), f.Usage)
		})
	}
	return fs
}

// parse parses args, then fills every flag not given on the command line from its env var.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("environment variable %s=%q: %w", envName(f.Name), v, e)
			}
		}
	})
	return err
}

// DefaultAgentImage is the image the Helm chart installs; `make image` builds it.
var DefaultAgentImage = "ghcr.io/vault-injector/vault-injector:" + version

// mutatorFlags are the injection settings shared by `webhook` and `inject`, so the offline
// preview matches what the cluster would do.
type mutatorFlags struct {
	vaultAddress, authPath, agentImage, pullPolicy, style, audience, secretsPath string
	tokenExpiration                                                              time.Duration
	refresh                                                                      time.Duration
	cpuReq, cpuLim, memReq, memLim                                               string
	runAsUser                                                                    int64
	excluded                                                                     string
}

func (m *mutatorFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&m.vaultAddress, "vault-address", "https://vault.vault.svc:8200", "Vault address the agent uses unless a pod sets vault-injector.io/address")
	fs.StringVar(&m.authPath, "auth-path", "auth/kubernetes", "Vault kubernetes auth mount unless a pod sets vault-injector.io/auth-path")
	fs.StringVar(&m.agentImage, "agent-image", DefaultAgentImage, "image of the injected agent containers")
	fs.StringVar(&m.pullPolicy, "agent-image-pull-policy", string(corev1.PullIfNotPresent), "imagePullPolicy of the injected containers: Always, IfNotPresent or Never")
	fs.StringVar(&m.style, "sidecar-style", string(patch.StyleNative), "native (init container with restartPolicy Always, Kubernetes >= 1.29) or classic (init container + sidecar)")
	fs.StringVar(&m.audience, "token-audience", "vault", "audience of the service-account token the agent logs in with; the Vault role must list it (empty: the API server's default audiences)")
	fs.DurationVar(&m.tokenExpiration, "token-expiration", 10*time.Minute, "lifetime of the projected service-account token (kubelet refreshes it; minimum 10m)")
	fs.DurationVar(&m.refresh, "refresh-interval", 5*time.Minute, "how often the sidecar re-reads secrets without a lease, unless a pod sets vault-injector.io/refresh-interval")
	fs.StringVar(&m.secretsPath, "secrets-path", agentconfig.SecretsDir, "where app containers see rendered files unless a pod sets vault-injector.io/secrets-path")
	def := patch.DefaultResources()
	fs.StringVar(&m.cpuReq, "agent-cpu-request", def.Requests.Cpu().String(), "CPU request of injected containers")
	fs.StringVar(&m.cpuLim, "agent-cpu-limit", def.Limits.Cpu().String(), "CPU limit of injected containers (empty: none)")
	fs.StringVar(&m.memReq, "agent-memory-request", def.Requests.Memory().String(), "memory request of injected containers")
	fs.StringVar(&m.memLim, "agent-memory-limit", def.Limits.Memory().String(), "memory limit of injected containers (empty: none)")
	fs.Int64Var(&m.runAsUser, "agent-uid", 65532, "UID (and GID) the injected containers run as")
	fs.StringVar(&m.excluded, "excluded-namespaces", strings.Join(webhook.DefaultExcludedNamespaces, ","), "comma-separated namespaces never injected, whatever their labels")
}

func (m *mutatorFlags) mutator() (*webhook.Mutator, error) {
	style := patch.Style(m.style)
	if style != patch.StyleNative && style != patch.StyleClassic {
		return nil, fmt.Errorf("--sidecar-style=%q: expected native or classic", m.style)
	}
	pp := corev1.PullPolicy(m.pullPolicy)
	if pp != corev1.PullAlways && pp != corev1.PullIfNotPresent && pp != corev1.PullNever {
		return nil, fmt.Errorf("--agent-image-pull-policy=%q: expected Always, IfNotPresent or Never", m.pullPolicy)
	}
	if m.tokenExpiration < 10*time.Minute {
		return nil, fmt.Errorf("--token-expiration=%s: the API server's minimum is 10m", m.tokenExpiration)
	}
	authPath := strings.Trim(m.authPath, "/")
	if authPath == "" {
		return nil, fmt.Errorf("--auth-path is empty: expected a mount like auth/kubernetes")
	}
	if !strings.HasPrefix(authPath, "auth/") {
		authPath = "auth/" + authPath
	}
	if !strings.HasPrefix(m.vaultAddress, "https://") && !strings.HasPrefix(m.vaultAddress, "http://") {
		return nil, fmt.Errorf("--vault-address=%q: expected a URL like https://vault.vault.svc:8200", m.vaultAddress)
	}
	if m.agentImage == "" {
		return nil, fmt.Errorf("--agent-image is empty: expected an image reference")
	}
	res := corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}}
	for _, q := range []struct {
		flag, val string
		list      corev1.ResourceList
		name      corev1.ResourceName
	}{
		{"agent-cpu-request", m.cpuReq, res.Requests, corev1.ResourceCPU},
		{"agent-cpu-limit", m.cpuLim, res.Limits, corev1.ResourceCPU},
		{"agent-memory-request", m.memReq, res.Requests, corev1.ResourceMemory},
		{"agent-memory-limit", m.memLim, res.Limits, corev1.ResourceMemory},
	} {
		if q.val == "" {
			continue
		}
		v, err := resource.ParseQuantity(q.val)
		if err != nil {
			return nil, fmt.Errorf("--%s=%q: expected a quantity like 10m or 16Mi: %w", q.flag, q.val, err)
		}
		q.list[q.name] = v
	}
	var excluded []string
	for _, ns := range strings.Split(m.excluded, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			excluded = append(excluded, ns)
		}
	}
	return &webhook.Mutator{
		Defaults: agentconfig.Defaults{
			Address:         strings.TrimRight(m.vaultAddress, "/"),
			AuthPath:        authPath,
			RefreshInterval: m.refresh,
			SecretsPath:     m.secretsPath,
		},
		Settings: patch.Settings{
			AgentImage:             m.agentImage,
			ImagePullPolicy:        pp,
			Style:                  style,
			TokenAudience:          m.audience,
			TokenExpirationSeconds: int64(m.tokenExpiration / time.Second),
			Resources:              res,
			RunAsUser:              m.runAsUser,
		},
		ExcludedNamespaces: excluded,
	}, nil
}
