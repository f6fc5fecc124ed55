package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
	authenticationv1 "k8s.io/api/authentication/v1"

	"github.com/vault-injector/vault-injector/agentconfig"
)

// VaultOptions reach Vault from where doctor runs. Token is an operator's token, optional: with
// it doctor reads the role and the auth method's config to name a login failure exactly.
type VaultOptions struct {
	Addr, Token, CACert string
}

// vaultClient builds a client for one identity at addr, with no token and nothing taken from
// the environment but what opts say.
func vaultClient(opts VaultOptions, id agentconfig.Identity) (*api.Client, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: id.TLSServerName, InsecureSkipVerify: id.TLSSkipVerify}
	if opts.CACert != "" {
		pem, err := os.ReadFile(opts.CACert)
		if err != nil {
			return nil, fmt.Errorf("--vault-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--vault-ca %s holds no PEM certificate", opts.CACert)
		}
		tlsCfg.RootCAs = pool
	}
	c, err := api.NewClient(&api.Config{
		Address: opts.Addr,
		HttpClient: &http.Client{Transport: &http.Transport{
			Proxy:           nil,
			DialContext:     (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
			TLSClientConfig: tlsCfg,
		}},
		Timeout:    20 * time.Second,
		MaxRetries: 0,
	})
	if err != nil {
		return nil, fmt.Errorf("Vault client for %s: %w", opts.Addr, err)
	}
	c.ClearToken()
	if id.Namespace != "" {
		c.SetNamespace(id.Namespace)
	} else {
		c.ClearNamespace()
	}
	return c, nil
}

// checkTokenRequest asks the API server for a token of the pod's service account with the
// audience the injected pod's projected token carries: the token the agent would log in with.
func checkTokenRequest(ctx context.Context, c Kube, ns, sa, audience, subject string) (string, Finding) {
	const check = "token-request"
	exp := int64(600)
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}
	if audience != "" {
		tr.Spec.Audiences = []string{audience}
	}
	got := &authenticationv1.TokenRequest{}
	if err := c.Create(ctx, resTokenRequest, ns, sa, tr, got, false); err != nil {
		return "", fail(check, subject, fmt.Sprintf("create the service account (kubectl -n %s create serviceaccount %s), or grant yourself create on serviceaccounts/token", ns, sa),
			"TokenRequest for service account %s/%s (audience %q): %v", ns, sa, audience, err)
	}
	if got.Status.Token == "" {
		return "", fail(check, subject, "check the API server's --service-account-issuer and signing key flags", "TokenRequest for %s/%s returned no token", ns, sa)
	}
	return got.Status.Token, pass(check, subject, "TokenRequest for service account %s/%s with audience %q", ns, sa, audience)
}

// capabilityPath is the path Vault checks policies on for a template's path: KV version 2
// reads go to <mount>/data/<rest>, as the agent reads them (mount looked up the same way).
func capabilityPath(ctx context.Context, vc *api.Client, p string) string {
	p = strings.Trim(p, "/")
	s, err := vc.Logical().ReadWithContext(ctx, "sys/internal/ui/mounts/"+p)
	if err != nil || s == nil {
		return p
	}
	mount, _ := s.Data["path"].(string)
	typ, _ := s.Data["type"].(string)
	opts, _ := s.Data["options"].(map[string]any)
	version, _ := opts["version"].(string)
	if typ != "kv" || version != "2" || mount == "" {
		return p
	}
	base := strings.TrimSuffix(mount, "/")
	rest := strings.TrimPrefix(strings.TrimPrefix(p, base), "/")
	if rest == "" {
		return base + "/data"
	}
	for _, pre := range []string{"data/", "metadata/", "subkeys/"} {
		if strings.HasPrefix(rest, pre) {
			return p
		}
	}
	return base + "/data/" + rest
}

// checkCapabilities asks Vault, with the identity's own token, what it may do on each path its
// templates use.
func checkCapabilities(ctx context.Context, vc *api.Client, role string, uses []vaultUse, subject string) []Finding {
	const check = "vault-capabilities"
	var out []Finding
	for _, u := range uses {
		p := capabilityPath(ctx, vc, u.Path)
		caps, err := vc.Sys().CapabilitiesSelfWithContext(ctx, p)
		if err != nil {
			out = append(out, fail(check, subject, "check that the token may call sys/capabilities-self (the default policy allows it)", "capabilities on %s: %v", p, err))
			continue
		}
		if slices.Contains(caps, "root") || slices.Contains(caps, u.Capability) || u.Capability == "update" && slices.Contains(caps, "create") {
			out = append(out, pass(check, subject, "%s: %s allowed (%s)", p, u.Capability, strings.Join(caps, ", ")))
			continue
		}
		out = append(out, fail(check, subject, fmt.Sprintf(`add path %q { capabilities = [%q] } to a policy of role %q`, p, u.Capability, role),
			"%s: the policies of role %q do not allow %s (capabilities: %s)", p, role, u.Capability, capList(caps)))
	}
	return out
}

func capList(caps []string) string {
	if len(caps) == 0 {
		return "none"
	}
	return strings.Join(caps, ", ")
}

// checkRevoke revokes the token doctor logged in with, so no check leaves a token behind.
func checkRevoke(ctx context.Context, vc *api.Client, subject string) Finding {
	const check = "vault-revoke"
	if err := vc.Auth().Token().RevokeSelfWithContext(ctx, ""); err != nil {
		return warn(check, subject, "it expires with its TTL; revoke it by accessor if needed", "revoking the token doctor logged in with failed: %v", err)
	}
	return pass(check, subject, "the token doctor logged in with is revoked")
}
