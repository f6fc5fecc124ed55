package doctor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"

	"github.com/hashicorp/vault/api"
	authenticationv1 "k8s.io/api/authentication/v1"

	"github.com/vault-injector/vault-injector/agentconfig"
)

// loginInput is what a login needs and what its failure is explained with.
type loginInput struct {
	ID        agentconfig.Identity
	JWT       string
	Namespace string
	SA        string
	Audience  string
	// Role is the role as the operator token reads it (nil without one).
	Role *roleInfo
	// Review is our own TokenReview of the JWT, done with the caller's credentials.
	Review *reviewResult
}

// checkLogin logs in as the agent would. It returns the Vault token, which the caller must
// revoke.
func checkLogin(ctx context.Context, vc *api.Client, in loginInput, subject string) (string, Finding) {
	const check = "vault-login"
	mount := strings.Trim(in.ID.AuthPath, "/")
	s, err := vc.Logical().WriteWithContext(ctx, mount+"/login", map[string]any{"role": in.ID.Role, "jwt": in.JWT})
	if err != nil {
		msg, fix := explainLoginFailure(err, in)
		return "", fail(check, subject, fix, "login to %s at %s with role %q failed: %s", mount, vc.Address(), in.ID.Role, msg)
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return "", fail(check, subject, "check the auth method at "+mount, "login to %s with role %q returned no token", mount, in.ID.Role)
	}
	return s.Auth.ClientToken, pass(check, subject, "login to %s with role %q as %s/%s: policies %s", mount, in.ID.Role, in.Namespace, in.SA, strings.Join(s.Auth.Policies, ", "))
}

// roleInfo is the part of a kubernetes auth role a login depends on.
type roleInfo struct {
	Names, Namespaces []string
	Audience          string
	NamespaceSelector string
}

// readRole reads the role with the operator's token; nil when it cannot.
func readRole(ctx context.Context, vc *api.Client, id agentconfig.Identity) *roleInfo {
	s, err := vc.Logical().ReadWithContext(ctx, strings.Trim(id.AuthPath, "/")+"/role/"+id.Role)
	if err != nil || s == nil {
		return nil
	}
	r := &roleInfo{
		Names:      stringList(s.Data["bound_service_account_names"]),
		Namespaces: stringList(s.Data["bound_service_account_namespaces"]),
	}
	r.Audience, _ = s.Data["audience"].(string)
	r.NamespaceSelector, _ = s.Data["bound_service_account_namespace_selector"].(string)
	return r
}

func stringList(v any) []string {
	var out []string
	switch v := v.(type) {
	case []any:
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
	case string:
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// bound reports whether a role's list allows name: exactly, "*", or a glob.
func bound(list []string, name string) bool {
	for _, p := range list {
		if p == "*" || p == name {
			return true
		}
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// reviewResult is our own TokenReview of the token the login used.
type reviewResult struct {
	Authenticated bool
	Error         string
}

// reviewToken does the TokenReview Vault would do, with the caller's credentials and the
// audience the role requires (the token's own audience when unknown).
func reviewToken(ctx context.Context, c Kube, jwt, audience string) *reviewResult {
	tr := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: jwt}}
	if audience != "" {
		tr.Spec.Audiences = []string{audience}
	}
	got := &authenticationv1.TokenReview{}
	if err := c.Create(ctx, resTokenReviews, "", "", tr, got, false); err != nil {
		return nil
	}
	return &reviewResult{Authenticated: got.Status.Authenticated, Error: got.Status.Error}
}

// explainLoginFailure names why Vault refused a login: from Vault's message when it says,
// else from the role (read with the operator token) and our own TokenReview, else the list of
// likely causes of a bare 403 and how to tell them apart.
func explainLoginFailure(err error, in loginInput) (msg, fix string) {
	var re *api.ResponseError
	if !errors.As(err, &re) {
		if strings.Contains(err.Error(), "x509") || strings.Contains(err.Error(), "certificate") {
			return fmt.Sprintf("Vault's TLS certificate is not trusted: %v", err), "pass --vault-ca with the CA of Vault's certificate (the pod's identity uses its ca-configmap)"
		}
		return err.Error(), "check --vault-addr: doctor must reach Vault (e.g. kubectl -n vault port-forward svc/vault 8200)"
	}
	said := strings.Join(re.Errors, "; ")
	who := in.Namespace + "/" + in.SA
	role := fmt.Sprintf("vault read %s/role/%s", strings.Trim(in.ID.AuthPath, "/"), in.ID.Role)
	for _, e := range loginErrors {
		if strings.Contains(said, e.vaultSays) {
			return e.explain(in, said)
		}
	}
	if re.StatusCode == http.StatusNotFound {
		return fmt.Sprintf("no auth method is mounted at %s (Vault said: %s)", in.ID.AuthPath, said), "enable it (vault auth enable kubernetes) or fix vault-injector.io/auth-path"
	}
	if strings.Contains(said, "x509") || strings.Contains(said, "certificate signed by unknown authority") {
		return fmt.Sprintf("Vault cannot verify the API server's certificate when it calls TokenReview (CA mismatch; Vault said: %s)", said),
			fmt.Sprintf("vault write %s/config kubernetes_ca_cert=@ca.crt with the CA of the API server Vault calls", strings.Trim(in.ID.AuthPath, "/"))
	}
	if re.StatusCode != http.StatusForbidden {
		return fmt.Sprintf("HTTP %d: %s", re.StatusCode, said), "read Vault's server log for this login"
	}
	// A bare 403: Vault's TokenReview failed, or the role refused the token.
	if r := in.Role; r != nil {
		switch {
		case len(r.Names) > 0 && !bound(r.Names, in.SA):
			return fmt.Sprintf("role %q is not bound to service account %s (bound_service_account_names: %s)", in.ID.Role, who, strings.Join(r.Names, ", ")),
				fmt.Sprintf("add %s to bound_service_account_names of role %q, or run the pod as one of those service accounts", in.SA, in.ID.Role)
		case len(r.Namespaces) > 0 && r.NamespaceSelector == "" && !bound(r.Namespaces, in.Namespace):
			return fmt.Sprintf("role %q is not bound to namespace %s (bound_service_account_namespaces: %s)", in.ID.Role, in.Namespace, strings.Join(r.Namespaces, ", ")),
				fmt.Sprintf("add %s to bound_service_account_namespaces of role %q", in.Namespace, in.ID.Role)
		case r.Audience != "" && r.Audience != in.Audience:
			return fmt.Sprintf("audience mismatch: role %q requires audience %q, the pod's token carries %q", in.ID.Role, r.Audience, in.Audience),
				fmt.Sprintf("set audience=%s on the role, or the webhook's --token-audience (chart webhook.tokenAudience) to %s", in.Audience, r.Audience)
		}
	}
	if rv := in.Review; rv != nil && !rv.Authenticated {
		return fmt.Sprintf("the API server rejects the token for audience %q (%s), so Vault's TokenReview fails too (Vault said: %s)", in.Audience, rv.Error, said),
			"make the role's audience and the webhook's --token-audience agree"
	}
	causes := "Vault answered a bare 403, which it gives for any failed TokenReview. Likely causes: " +
		"(1) the role's audience differs from the token's (" + fmt.Sprintf("%q", in.Audience) + "): `" + role + "` shows audience; " +
		"(2) the role is not bound to " + who + ": the same command shows bound_service_account_names/namespaces; " +
		"(3) Vault's token reviewer may not create TokenReviews: `kubectl auth can-i create tokenreviews.authentication.k8s.io --as=system:serviceaccount:<reviewer-namespace>:<reviewer>` must say yes (ClusterRoleBinding to system:auth-delegator), and its token_reviewer_jwt must not have expired; " +
		"(4) kubernetes_host in `vault read " + strings.Trim(in.ID.AuthPath, "/") + "/config` points at another cluster"
	if rv := in.Review; rv != nil && rv.Authenticated {
		causes += "; our own TokenReview of the same token passed, so (1) and the token itself are fine: look at (2)-(4)"
	}
	return causes + fmt.Sprintf(" (Vault said: %s)", said), "pass --vault-token with a token that may read the role, so doctor can tell which one; else check the causes above in order"
}

// loginErrors are the messages Vault's kubernetes auth method gives, with what they mean.
var loginErrors = []struct {
	vaultSays string
	explain   func(in loginInput, said string) (msg, fix string)
}{
	{"invalid role name", func(in loginInput, said string) (string, string) {
		return fmt.Sprintf("role %q does not exist at %s (Vault said: %s)", in.ID.Role, in.ID.AuthPath, said),
			fmt.Sprintf("create the role (vault write %s/role/%s ...) or fix %s", strings.Trim(in.ID.AuthPath, "/"), in.ID.Role, agentconfig.AnnotationRole)
	}},
	{"service account name not authorized", func(in loginInput, said string) (string, string) {
		return fmt.Sprintf("role %q is not bound to service account %s/%s (Vault said: %s)", in.ID.Role, in.Namespace, in.SA, said),
			fmt.Sprintf("add %s to bound_service_account_names of role %q, or run the pod as a service account the role names", in.SA, in.ID.Role)
	}},
	{"namespace not authorized", func(in loginInput, said string) (string, string) {
		return fmt.Sprintf("role %q is not bound to namespace %s (Vault said: %s)", in.ID.Role, in.Namespace, said),
			fmt.Sprintf("add %s to bound_service_account_namespaces of role %q", in.Namespace, in.ID.Role)
	}},
	{"audience", func(in loginInput, said string) (string, string) {
		if in.Role != nil && in.Role.Audience != "" {
			return fmt.Sprintf("audience mismatch: role %q requires audience %q, the pod's token carries %q (Vault said: %s)", in.ID.Role, in.Role.Audience, in.Audience, said),
				fmt.Sprintf("set audience=%s on the role, or the webhook's --token-audience (chart webhook.tokenAudience) to %s", in.Audience, in.Role.Audience)
		}
		return fmt.Sprintf("audience mismatch: role %q rejects the token's audience %q (Vault said: %s)", in.ID.Role, in.Audience, said),
			"make the role's audience (vault read " + strings.Trim(in.ID.AuthPath, "/") + "/role/" + in.ID.Role + ") and the webhook's --token-audience (chart webhook.tokenAudience) agree"
	}},
}
