package doctor

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/vault-injector/vault-injector/agentconfig"
	"github.com/vault-injector/vault-injector/patch"
)

// Options are where doctor looks.
type Options struct {
	Client Kube
	// Dialer reaches the webhook's pods (PortForwardDialer from a laptop).
	Dialer Dialer
	// WebhookConfig names the MutatingWebhookConfiguration; empty: the one holding WebhookName.
	WebhookConfig string
	// Vault enables the Vault-side checks when Addr is set.
	Vault VaultOptions
	// TokenAudience is the audience used when the injected pod does not show one (the
	// webhook's --token-audience default).
	TokenAudience string
	// AuthPath is the auth mount used when the pod is not injected and names none.
	AuthPath string
}

// defaultRefresh is the webhook's --refresh-interval default; the config derived here is only
// read for its identities and paths, never for timing.
const defaultRefresh = 5 * time.Minute

// webhookDefaultAddress is the webhook's --vault-address default, the identity's address when
// the pod names none and doctor was given none; doctor itself connects to --vault-addr.
const webhookDefaultAddress = "https://vault.vault.svc:8200"

// Run checks the target and returns the checklist. An error means the target could not be
// read at all (a typo in its name, no access): nothing was checked.
func Run(ctx context.Context, opts Options, t Target) (*Report, error) {
	subjects, err := resolve(ctx, opts.Client, t)
	if err != nil {
		return nil, err
	}
	r := &Report{}
	ref, f := checkWebhookConfig(ctx, opts.Client, opts.WebhookConfig)
	r.add(f)
	if ref != nil {
		wp, f := checkWebhookPods(ctx, opts.Client, ref)
		r.add(f)
		r.add(checkServingCerts(ctx, opts.Dialer, ref, wp)...)
	}
	if t.All && len(subjects) == 0 {
		r.add(pass("pods", "namespace "+t.Namespace, "no pod in %s carries an injector annotation", t.Namespace))
	}
	seenNS := map[string]bool{}
	for _, s := range subjects {
		if ref != nil && !seenNS[s.Namespace] {
			seenNS[s.Namespace] = true
			ns, err := get[corev1.Namespace](ctx, opts.Client, resNamespaces, "", s.Namespace)
			if err != nil {
				r.add(fail("namespace-selector", "namespace "+s.Namespace, "create the namespace or fix -n", "namespace %s: %v", s.Namespace, err))
			} else {
				r.add(checkNamespaceSelector(ns, ref.Hook))
			}
		}
		r.add(checkSubject(ctx, opts, ref, s)...)
	}
	r.finish()
	return r, nil
}

// checkSubject runs the pod-level checks on one subject.
func checkSubject(ctx context.Context, opts Options, ref *webhookRef, s subject) []Finding {
	var out []Finding
	if ref != nil {
		out = append(out, checkObjectSelector(s.Name, s.Pod, ref.Hook), checkMatchConditions(s.Name, s.Pod, ref.Hook))
	}
	out = append(out, checkOptOut(s.Name, s.Pod))
	dr, f := checkDryRun(ctx, opts.Client, s.Name, s.Pod)
	out = append(out, f)
	if s.Running != nil {
		out = append(out, checkDrift(s.Name, s.Workload, s.Running))
		out = append(out, checkAgentErrors(ctx, opts.Client, s.Name, s.Running)...)
	}
	cfg, req, cf := agentConfigFor(opts, s, dr)
	if cf != nil {
		out = append(out, *cf)
	}
	if cfg == nil {
		return out
	}
	if opts.Vault.Addr == "" {
		return append(out, warn("vault", s.Name, "pass --vault-addr (or VAULT_ADDR), e.g. through kubectl -n vault port-forward svc/vault 8200",
			"Vault-side checks skipped: no Vault address"))
	}
	audience := tokenAudience(opts, s, dr)
	for _, id := range cfg.Identities {
		subj := s.Name + " identity " + id.Name
		uses, fs := identityUses(ctx, opts.Client, s.Namespace, cfg, req, id.Name, subj)
		out = append(out, fs...)
		out = append(out, checkIdentity(ctx, opts, s, id, audience, uses, subj)...)
	}
	return out
}

// agentConfigFor derives the agent config exactly as the webhook did: from the injected
// pod's agent-config annotation (dry-run answer, else the live pod), else from the pod's
// annotations with the agentconfig parser. The request carries the templates ConfigMap.
func agentConfigFor(opts Options, s subject, dr *dryRun) (*agentconfig.Config, *agentconfig.Request, *Finding) {
	const check = "agent-config"
	ann := s.Pod.Annotations
	if agentconfig.HasVaultAnnotations(ann) {
		t, err := agentconfig.TranslateVaultAnnotations(ann)
		if err != nil {
			f := fail(check, s.Name, "fix the annotation it names", "%v", err)
			return nil, nil, &f
		}
		if t != nil {
			ann = t
		}
	}
	authPath := opts.AuthPath
	if authPath == "" {
		authPath = agentconfig.DefaultKubernetesAuthPath
	}
	addr := opts.Vault.Addr
	if addr == "" {
		addr = webhookDefaultAddress
	}
	req, err := agentconfig.FromAnnotations(ann, agentconfig.Defaults{Address: addr, AuthPath: authPath, SecretsPath: agentconfig.SecretsDir, RefreshInterval: defaultRefresh})
	if err != nil {
		f := fail(check, s.Name, "fix the annotation it names", "%v", err)
		return nil, nil, &f
	}
	if req == nil {
		return nil, nil, nil
	}
	for _, p := range []*corev1.Pod{dryRunPod(dr), s.Pod} {
		if p == nil {
			continue
		}
		if raw, ok := p.Annotations[agentconfig.AnnotationAgentConfig]; ok {
			cfg, err := agentconfig.Parse([]byte(raw))
			if err != nil {
				f := fail(check, s.Name, "recreate the pod with the current webhook", "the pod's %s annotation: %v", agentconfig.AnnotationAgentConfig, err)
				return nil, nil, &f
			}
			return cfg, req, nil
		}
	}
	return req.Agent, req, nil
}

func dryRunPod(dr *dryRun) *corev1.Pod {
	if dr == nil {
		return nil
	}
	return dr.Pod
}

// tokenAudience is the audience of the token the injected pod logs in with, as its projected
// token volume says, else opts.TokenAudience.
func tokenAudience(opts Options, s subject, dr *dryRun) string {
	for _, p := range []*corev1.Pod{dryRunPod(dr), s.Pod} {
		if p == nil {
			continue
		}
		for _, v := range p.Spec.Volumes {
			if v.Name != patch.TokenVolume || v.Projected == nil {
				continue
			}
			for _, src := range v.Projected.Sources {
				if src.ServiceAccountToken != nil {
					return src.ServiceAccountToken.Audience
				}
			}
		}
	}
	return opts.TokenAudience
}

// identityUses gathers the Vault paths an identity's outputs read: default templates' paths,
// inline templates, and the templates of the templates ConfigMap (read through the API).
func identityUses(ctx context.Context, c Kube, ns string, cfg *agentconfig.Config, req *agentconfig.Request, identity, subject string) ([]vaultUse, []Finding) {
	const check = "templates"
	var uses []vaultUse
	var out []Finding
	dynamic := 0
	add := func(name, text string) {
		u, d, err := templateUses(name, text)
		if err != nil {
			out = append(out, fail(check, subject, "fix the template's syntax", "%v", err))
			return
		}
		uses, dynamic = append(uses, u...), dynamic+d
	}
	for _, sec := range cfg.Secrets {
		switch {
		case sec.Identity != identity:
		case sec.Template != "":
			add(sec.Name, sec.Template)
		case sec.Path != "":
			uses = append(uses, vaultUse{Path: sec.Path, Capability: "read"})
		}
	}
	if cfg.TemplatesDir != "" && cfg.TemplatesIdentity == identity && req != nil && req.TemplatesConfigMap != "" {
		cm, err := get[corev1.ConfigMap](ctx, c, resConfigMaps, ns, req.TemplatesConfigMap)
		if err != nil {
			out = append(out, fail(check, subject, fmt.Sprintf("create ConfigMap %s/%s with the templates as keys ending in .ctmpl", ns, req.TemplatesConfigMap),
				"templates ConfigMap %s/%s: %v", ns, req.TemplatesConfigMap, err))
		} else {
			keys := make([]string, 0, len(cm.Data))
			for k := range cm.Data {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				if strings.HasSuffix(k, ".ctmpl") || strings.HasSuffix(k, ".tmpl") {
					add("configmap "+req.TemplatesConfigMap+" key "+k, cm.Data[k])
				}
			}
		}
	}
	if dynamic > 0 {
		out = append(out, warn(check, subject, "check those paths by hand with vault token capabilities", "%d secret call(s) compute their path at render time: not checked", dynamic))
	}
	return dedupe(uses), out
}

func dedupe(uses []vaultUse) []vaultUse {
	sort.Slice(uses, func(i, j int) bool {
		if uses[i].Path != uses[j].Path {
			return uses[i].Path < uses[j].Path
		}
		return uses[i].Capability < uses[j].Capability
	})
	var out []vaultUse
	for i, u := range uses {
		if i == 0 || u != uses[i-1] {
			out = append(out, u)
		}
	}
	return out
}

// checkIdentity runs the Vault-side checks of one identity: token request, login, capabilities
// on every path, revoke.
func checkIdentity(ctx context.Context, opts Options, s subject, id agentconfig.Identity, audience string, uses []vaultUse, subj string) []Finding {
	vc, err := vaultClient(opts.Vault, id)
	if err != nil {
		return []Finding{fail("vault-login", subj, "fix --vault-addr / --vault-ca", "%v", err)}
	}
	sa := s.Pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	jwt, f := checkTokenRequest(ctx, opts.Client, s.Namespace, sa, audience, subj)
	out := []Finding{f}
	if jwt == "" {
		return out
	}
	in := loginInput{ID: id, JWT: jwt, Namespace: s.Namespace, SA: sa, Audience: audience}
	if opts.Vault.Token != "" {
		if op, err := vaultClient(opts.Vault, id); err == nil {
			op.SetToken(opts.Vault.Token)
			in.Role = readRole(ctx, op, id)
		}
	}
	reviewAudience := audience
	if in.Role != nil && in.Role.Audience != "" {
		reviewAudience = in.Role.Audience
	}
	in.Review = reviewToken(ctx, opts.Client, jwt, reviewAudience)
	token, f := checkLogin(ctx, vc, in, subj)
	out = append(out, f)
	if token == "" {
		return out
	}
	vc.SetToken(token)
	out = append(out, checkCapabilities(ctx, vc, id.Role, uses, subj)...)
	return append(out, checkRevoke(ctx, vc, subj))
}
