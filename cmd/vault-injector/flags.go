package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/vault-injector/vault-injector/agentconfig"
	"github.com/vault-injector/vault-injector/certs"
	"github.com/vault-injector/vault-injector/patch"
	"github.com/vault-injector/vault-injector/webhook"
)

// DefaultAgentImage is the image the Helm chart installs; `make image` builds it.
var DefaultAgentImage = "ghcr.io/vault-injector/vault-injector:" + version

// mutatorFlags are the injection settings shared by `webhook` and `inject`, so the offline
// preview matches what the cluster would do.
type mutatorFlags struct {
	vaultAddress, authPath, agentImage, pullPolicy, style, audience, secretsPath string
	tokenExpiration                                                              time.Duration
	refresh                                                                      time.Duration
	cpuReq, cpuLim, memReq, memLim                                               string
	agentUID                                                                     agentUID
	excluded                                                                     string
	caConfigMap                                                                  string
	acceptVault                                                                  bool
	envStyle                                                                     string
}

func (m *mutatorFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&m.vaultAddress, "vault-address", "https://vault.vault.svc:8200", "Vault address the agent uses unless a pod sets vault-injector.io/address")
	fs.StringVar(&m.authPath, "auth-path", agentconfig.DefaultKubernetesAuthPath, "Vault kubernetes auth mount unless a pod sets vault-injector.io/auth-path")
	fs.StringVar(&m.caConfigMap, "vault-ca-configmap", "", "ConfigMap, present in every opted-in namespace (e.g. distributed by trust-manager), holding the CA of Vault's TLS certificate, as <name> (key ca.crt) or <name>/<key>, unless a pod sets vault-injector.io/ca-configmap (empty: the system roots of the agent image)")
	fs.StringVar(&m.agentImage, "agent-image", DefaultAgentImage, "image of the injected agent containers")
	fs.StringVar(&m.pullPolicy, "agent-image-pull-policy", string(corev1.PullIfNotPresent), "imagePullPolicy of the injected containers: Always, IfNotPresent or Never")
	fs.StringVar(&m.style, "sidecar-style", string(patch.StyleNative), "native (init container with restartPolicy Always, Kubernetes >= 1.29) or classic (init container + sidecar)")
	fs.StringVar(&m.audience, "token-audience", "vault", "audience of the service-account token the agent logs in with; the Vault role must list it (empty: the API server's default audiences)")
	fs.DurationVar(&m.tokenExpiration, "token-expiration", 10*time.Minute, "lifetime of the projected service-account token (kubelet refreshes it; minimum 10m)")
	fs.DurationVar(&m.refresh, "refresh-interval", time.Duration(agentconfig.DefaultRefreshInterval), "how often the sidecar re-reads secrets without a lease, unless a pod sets vault-injector.io/refresh-interval")
	fs.StringVar(&m.secretsPath, "secrets-path", agentconfig.SecretsDir, "where app containers see rendered files unless a pod sets vault-injector.io/secrets-path")
	def := patch.DefaultResources()
	fs.StringVar(&m.cpuReq, "agent-cpu-request", def.Requests.Cpu().String(), "CPU request of injected containers")
	fs.StringVar(&m.cpuLim, "agent-cpu-limit", def.Limits.Cpu().String(), "CPU limit of injected containers (empty: none)")
	fs.StringVar(&m.memReq, "agent-memory-request", def.Requests.Memory().String(), "memory request of injected containers")
	fs.StringVar(&m.memLim, "agent-memory-limit", def.Limits.Memory().String(), "memory limit of injected containers (empty: none)")
	m.agentUID = agentUID{uid: 65532}
	fs.Var(&m.agentUID, "agent-uid", `UID (and GID) the injected containers run as, or "auto": leave runAsUser/runAsGroup unset, so the pod's securityContext or the platform chooses (OpenShift's restricted-v2 SCC refuses a UID outside the namespace's range)`)
	fs.BoolVar(&m.acceptVault, "accept-vault-annotations", false, "also inject pods annotated for HashiCorp's injector (vault.hashicorp.com/agent-inject: \"true\"), translated to vault-injector's annotations; keys without an equivalent deny the pod, naming them (README: migrating from vault.hashicorp.com)")
	fs.StringVar(&m.envStyle, "env-style", string(agentconfig.EnvStyleAuto), `how app containers get env-<NAME> variables unless a pod sets vault-injector.io/env-style: "file" (env[].valueFrom.fileKeyRef, read by the kubelet; Kubernetes >= 1.35), "exec" (the container's command runs under vault-injector exec) or "auto" (file when every node's kubelet is >= 1.35, watched; needs get/list/watch on nodes; inject, offline, shows file)`)
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
	if m.agentImage == "" {
		return nil, fmt.Errorf("--agent-image is empty: expected an image reference")
	}
	defaults, err := m.defaults()
	if err != nil {
		return nil, err
	}
	envStyle, err := agentconfig.ParseEnvStyle(m.envStyle, true)
	if err != nil {
		return nil, flagError("env-style", m.envStyle, err)
	}
	if envStyle == agentconfig.EnvStyleAuto {
		envStyle = "" // the caller resolves it: watchEnvStyle, offlineEnvStyle
	}
	res, err := m.resources()
	if err != nil {
		return nil, err
	}
	var excluded []string
	for _, ns := range strings.Split(m.excluded, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			excluded = append(excluded, ns)
		}
	}
	return &webhook.Mutator{
		Defaults: defaults,
		Settings: patch.Settings{
			AgentImage:             m.agentImage,
			ImagePullPolicy:        pp,
			Style:                  style,
			TokenAudience:          m.audience,
			TokenExpirationSeconds: int64(m.tokenExpiration / time.Second),
			Resources:              res,
			RunAsUser:              m.agentUID.uid,
			PlatformUID:            m.agentUID.auto,
			EnvStyle:               envStyle,
		},
		ExcludedNamespaces:     excluded,
		AcceptVaultAnnotations: m.acceptVault,
	}, nil
}

// envStyleAuto reports whether --env-style asks to follow the nodes.
func (m *mutatorFlags) envStyleAuto() bool { return m.envStyle == string(agentconfig.EnvStyleAuto) }

// defaults checks the flags that stand in for a pod annotation with that annotation's own
// parser, so a value a pod could not set fails here, naming the flag, instead of denying every
// pod with an error that blames the pod.
func (m *mutatorFlags) defaults() (agentconfig.Defaults, error) {
	d := agentconfig.Defaults{RefreshInterval: m.refresh, CAConfigMap: m.caConfigMap}
	for _, f := range []struct {
		flag, val string
		parse     func(string) (string, error)
		dst       *string
	}{
		{"vault-address", m.vaultAddress, agentconfig.ParseAddress, &d.Address},
		{"auth-path", m.authPath, agentconfig.ParseAuthPath, &d.AuthPath},
		{"secrets-path", m.secretsPath, agentconfig.ParseSecretsPath, &d.SecretsPath},
	} {
		v, err := f.parse(f.val)
		if err != nil {
			return d, flagError(f.flag, f.val, err)
		}
		*f.dst = v
	}
	if err := agentconfig.CheckRefreshInterval(m.refresh); err != nil {
		return d, flagError("refresh-interval", m.refresh.String(), err)
	}
	if m.audience != "" { // empty: the API server's default audiences
		if _, err := agentconfig.ParseTokenAudience(m.audience); err != nil {
			return d, flagError("token-audience", m.audience, err)
		}
	}
	if m.caConfigMap != "" { // empty: the system roots
		if _, _, err := agentconfig.ParseCAConfigMap(m.caConfigMap); err != nil {
			return d, flagError("vault-ca-configmap", m.caConfigMap, err)
		}
	}
	return d, nil
}

// resources reads the --agent-* quantities with the parser of the agent-* annotations; an
// empty flag means none.
func (m *mutatorFlags) resources() (corev1.ResourceRequirements, error) {
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
		v, err := agentconfig.ParseResource(q.val)
		if err != nil {
			return res, flagError(q.flag, q.val, err)
		}
		q.list[q.name] = v
	}
	return res, nil
}

// flagError names the flag and its value, as AnnotationError names an annotation.
func flagError(flag, val string, err error) error {
	return fmt.Errorf("--%s=%q: %w", flag, val, err)
}

// Serving-certificate modes of `webhook`.
const (
	certModeFiles       = "files"
	certModeSelfManaged = "self-managed"
)

// serviceAccountNamespaceFile is where Kubernetes mounts the pod's namespace.
var serviceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// newKubeClient builds the client of the self-managed mode: the kubeconfig file when given,
// else the in-cluster config. Tests replace it with a fake clientset.
var newKubeClient = func(kubeconfig string) (certs.API, error) {
	cfg, err := restConfig(kubeconfig, "--cert-mode=self-managed (or use --cert-mode=files)")
	if err != nil {
		return nil, err
	}
	return certs.NewRESTAPI(cfg)
}

// certFlags are the serving-certificate settings of `webhook`.
type certFlags struct {
	mode, certFile, keyFile, kubeconfig       string
	namespace, service, secret, webhookConfig string
	clusterDomain, dnsNames, ipAddresses      string
	leafLifetime, caLifetime, syncInterval    time.Duration
}

func (c *certFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.mode, "cert-mode", "", `serving certificate: "self-managed" (generate a CA and certificate, keep them in a Secret shared by replicas, rotate them and set the caBundle of the MutatingWebhookConfiguration; needs the Kubernetes API) or "files" (--tls-cert-file/--tls-key-file, e.g. from cert-manager, reloaded when they change); empty: files when --tls-cert-file or --tls-key-file is given, else self-managed`)
	fs.StringVar(&c.certFile, "tls-cert-file", "", "serving certificate (PEM) in files mode; reloaded when the file changes")
	fs.StringVar(&c.keyFile, "tls-key-file", "", "serving key (PEM) in files mode; reloaded when the file changes")
	fs.StringVar(&c.kubeconfig, "kubeconfig", "", "kubeconfig file for the Kubernetes API (self-managed certificates, --env-style=auto; empty: the in-cluster config of the pod)")
	fs.StringVar(&c.namespace, "namespace", "", "namespace of the webhook's Service and certificate Secret (empty: $POD_NAMESPACE, else the pod's service-account namespace)")
	fs.StringVar(&c.service, "service-name", "vault-injector", "the webhook's Service: the certificate is for <svc>, <svc>.<ns>, <svc>.<ns>.svc and <svc>.<ns>.svc.<cluster-domain>")
	fs.StringVar(&c.secret, "cert-secret-name", "vault-injector-tls", "Secret (type kubernetes.io/tls, plus ca.crt/ca.key) holding the CA and serving certificate shared by the replicas")
	fs.StringVar(&c.webhookConfig, "webhook-config-name", "vault-injector", "MutatingWebhookConfiguration whose webhooks get the CA bundle as caBundle (empty: leave caBundle alone)")
	fs.StringVar(&c.clusterDomain, "cluster-domain", certs.DefaultClusterDomain, "cluster DNS domain, for the <svc>.<ns>.svc.<cluster-domain> name")
	fs.StringVar(&c.dnsNames, "cert-dns-names", "", "comma-separated extra DNS names (or IP addresses) for the serving certificate")
	fs.StringVar(&c.ipAddresses, "cert-ip-addresses", "", "comma-separated IP addresses for the serving certificate, e.g. 127.0.0.1")
	fs.DurationVar(&c.leafLifetime, "cert-leaf-lifetime", certs.DefaultLeafLifetime, "lifetime of a serving certificate; renewed when two thirds have passed")
	fs.DurationVar(&c.caLifetime, "cert-ca-lifetime", certs.DefaultCALifetime, "lifetime of a generated CA (at least twice --cert-leaf-lifetime); its successor joins caBundle when two thirds have passed")
	fs.DurationVar(&c.syncInterval, "cert-sync-interval", certs.DefaultSyncInterval, "how often each replica re-reads the certificate Secret and caBundle, to pick up other replicas' changes")
}

// resolvedMode is --cert-mode, or what the file flags imply when it is empty.
func (c *certFlags) resolvedMode() (string, error) {
	switch c.mode {
	case "":
		if c.certFile != "" || c.keyFile != "" {
			return certModeFiles, nil
		}
		return certModeSelfManaged, nil
	case certModeFiles, certModeSelfManaged:
		return c.mode, nil
	default:
		return "", fmt.Errorf("--cert-mode=%q: expected self-managed or files", c.mode)
	}
}

// options returns the self-managed options the flags describe.
func (c *certFlags) options() (certs.SelfManagedOptions, error) {
	o := certs.SelfManagedOptions{
		Namespace:         c.namespace,
		ServiceName:       c.service,
		SecretName:        c.secret,
		WebhookConfigName: c.webhookConfig,
		ClusterDomain:     c.clusterDomain,
		LeafLifetime:      c.leafLifetime,
		CALifetime:        c.caLifetime,
		SyncInterval:      c.syncInterval,
	}
	if o.Namespace == "" {
		o.Namespace = strings.TrimSpace(os.Getenv("POD_NAMESPACE"))
	}
	if o.Namespace == "" {
		b, err := os.ReadFile(serviceAccountNamespaceFile)
		if err != nil {
			return o, fmt.Errorf("--namespace is empty, POD_NAMESPACE is unset and the pod's namespace is unknown (%v): set --namespace", err)
		}
		o.Namespace = strings.TrimSpace(string(b))
	}
	for _, n := range splitList(c.dnsNames) {
		if ip := net.ParseIP(n); ip != nil {
			o.IPAddresses = append(o.IPAddresses, ip)
		} else {
			o.ExtraDNSNames = append(o.ExtraDNSNames, n)
		}
	}
	for _, n := range splitList(c.ipAddresses) {
		ip := net.ParseIP(n)
		if ip == nil {
			return o, fmt.Errorf("--cert-ip-addresses: %q is not an IP address", n)
		}
		o.IPAddresses = append(o.IPAddresses, ip)
	}
	switch {
	case o.ServiceName == "":
		return o, fmt.Errorf("--service-name is empty: expected the webhook's Service name")
	case o.SecretName == "":
		return o, fmt.Errorf("--cert-secret-name is empty: expected a Secret name")
	case o.LeafLifetime < certs.MinLeafLifetime:
		return o, fmt.Errorf("--cert-leaf-lifetime=%s: expected at least %s", o.LeafLifetime, certs.MinLeafLifetime)
	case o.CALifetime < 2*o.LeafLifetime:
		return o, fmt.Errorf("--cert-ca-lifetime=%s: expected at least twice --cert-leaf-lifetime=%s", o.CALifetime, o.LeafLifetime)
	case o.SyncInterval <= 0:
		return o, fmt.Errorf("--cert-sync-interval=%s: expected a positive duration", o.SyncInterval)
	}
	return o, nil
}

// source starts the configured certificate source. In self-managed mode it blocks (bounded)
// until a certificate is available.
func (c *certFlags) source(ctx context.Context, log *slog.Logger) (certs.Source, error) {
	mode, err := c.resolvedMode()
	if err != nil {
		return nil, err
	}
	if mode == certModeFiles {
		if c.certFile == "" || c.keyFile == "" {
			return nil, fmt.Errorf("--cert-mode=files: --tls-cert-file and --tls-key-file are required: the API server only calls webhooks over HTTPS")
		}
		return certs.NewFileSource(ctx, c.certFile, c.keyFile, log)
	}
	if c.certFile != "" || c.keyFile != "" {
		return nil, fmt.Errorf("--tls-cert-file/--tls-key-file are for --cert-mode=files; --cert-mode=self-managed generates its own certificate")
	}
	opts, err := c.options()
	if err != nil {
		return nil, err
	}
	client, err := newKubeClient(c.kubeconfig)
	if err != nil {
		return nil, err
	}
	log.Info("self-managed serving certificate", "namespace", opts.Namespace, "secret", opts.SecretName, "service", opts.ServiceName,
		"webhook_configuration", opts.WebhookConfigName, "dns_names", strings.Join(opts.DNSNames(), ","))
	return certs.NewSelfManaged(ctx, client, opts, log)
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
