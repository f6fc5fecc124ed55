package agent

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/hashicorp/vault/api"
	k8sauth "github.com/hashicorp/vault/api/auth/kubernetes"

	"github.com/vault-injector/vault-injector/agentconfig"
)

// Backend is what the agent needs from a secrets server. Vault implements it; OpenBao and other
// servers speaking Vault's API work through the same implementation, and another store can be
// added behind this interface.
type Backend interface {
	// Login obtains a token for the identity and returns its auth data.
	Login(ctx context.Context) (*api.SecretAuth, error)
	// Read may be called from several goroutines at once (prefetch).
	Read(ctx context.Context, path string) (*api.Secret, error)
	Write(ctx context.Context, path string, data map[string]any) (*api.Secret, error)
	RenewLease(ctx context.Context, leaseID string, increment int) (*api.Secret, error)
	RevokeLease(ctx context.Context, leaseID string) error
	RenewToken(ctx context.Context, increment int) (*api.Secret, error)
	// LookupToken answers whether the current token still works (auth/token/lookup-self).
	LookupToken(ctx context.Context) (*api.Secret, error)
	RevokeToken(ctx context.Context) error
	Token() string
	SetToken(string)
}

// vaultBackend talks to Vault (or a Vault-API server) for one identity.
type vaultBackend struct {
	id        agentconfig.Identity
	tokenFile string
	client    *api.Client

	mu       sync.Mutex
	mounts   []mountInfo // seen mounts, for KV version 2 path rewriting
	lookupMu sync.Mutex  // held while a mount is looked up
}

func newVaultBackend(id agentconfig.Identity, saTokenFile string) (*vaultBackend, error) {
	c, err := newVaultClient(id)
	if err != nil {
		return nil, err
	}
	return &vaultBackend{id: id, tokenFile: saTokenFile, client: c}, nil
}

func (v *vaultBackend) Token() string     { return v.client.Token() }
func (v *vaultBackend) SetToken(t string) { v.client.SetToken(t) }

// loginMethods log in with the pod's projected service-account token, by auth method.
var loginMethods = map[string]func(ctx context.Context, v *vaultBackend) (*api.Secret, error){
	agentconfig.MethodKubernetes: func(ctx context.Context, v *vaultBackend) (*api.Secret, error) {
		mount := strings.TrimPrefix(v.id.AuthPath, "auth/")
		a, err := k8sauth.NewKubernetesAuth(v.id.Role, k8sauth.WithServiceAccountTokenPath(v.tokenFile), k8sauth.WithMountPath(mount))
		if err != nil {
			return nil, err
		}
		return v.client.Auth().Login(ctx, a)
	},
	// jwt: Vault checks the token's signature, issuer, audience and bound claims itself, with
	// the cluster's signing key: no TokenReview. The file is read at every login, since the
	// kubelet rotates it.
	agentconfig.MethodJWT: func(ctx context.Context, v *vaultBackend) (*api.Secret, error) {
		jwt, err := os.ReadFile(v.tokenFile)
		if err != nil {
			return nil, &permanentError{fmt.Errorf("read the service-account token for jwt login: %w", err)}
		}
		return v.client.Logical().WriteWithContext(ctx, v.id.AuthPath+"/login",
			map[string]any{"role": v.id.Role, "jwt": strings.TrimSpace(string(jwt))})
	},
}

func (v *vaultBackend) Login(ctx context.Context) (*api.SecretAuth, error) {
	login, ok := loginMethods[v.id.Method]
	if !ok {
		return nil, &permanentError{fmt.Errorf("identity %q: auth method %q is not supported", v.id.Name, v.id.Method)}
	}
	s, err := login(ctx, v)
	if err != nil {
		var pe *permanentError
		if errors.As(err, &pe) {
			return nil, err
		}
		return nil, explainLogin(err, v.id, v.tokenFile)
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return nil, fmt.Errorf("login to %s with role %q returned no token", v.id.AuthPath, v.id.Role)
	}
	return s.Auth, nil
}

func (v *vaultBackend) Read(ctx context.Context, path string) (*api.Secret, error) {
	path, s, err := v.readKV(ctx, path)
	if err != nil {
		return nil, explainAccess(err, "read", path, v.id)
	}
	if s == nil || deletedKVv2(s) {
		return nil, &permanentError{fmt.Errorf("no secret at %s (check the path and that the secret exists)", path)}
	}
	return s, nil
}

func (v *vaultBackend) Write(ctx context.Context, path string, data map[string]any) (*api.Secret, error) {
	s, err := v.client.Logical().WriteWithContext(ctx, path, data)
	if err != nil {
		return nil, explainAccess(err, "write", path, v.id)
	}
	if s == nil {
		return nil, &permanentError{fmt.Errorf("writing %s returned no data", path)}
	}
	return s, nil
}

func (v *vaultBackend) RenewLease(ctx context.Context, leaseID string, increment int) (*api.Secret, error) {
	s, err := v.client.Sys().RenewWithContext(ctx, leaseID, increment)
	return s, classify(err)
}

func (v *vaultBackend) RevokeLease(ctx context.Context, leaseID string) error {
	return v.client.Sys().RevokeWithContext(ctx, leaseID)
}

func (v *vaultBackend) RenewToken(ctx context.Context, increment int) (*api.Secret, error) {
	s, err := v.client.Auth().Token().RenewSelfWithContext(ctx, increment)
	return s, classify(err)
}

func (v *vaultBackend) LookupToken(ctx context.Context) (*api.Secret, error) {
	s, err := v.client.Auth().Token().LookupSelfWithContext(ctx)
	return s, classify(err)
}

func (v *vaultBackend) RevokeToken(ctx context.Context) error {
	return v.client.Auth().Token().RevokeSelfWithContext(ctx, "")
}

// permanentError will not heal by retrying: a denied role, a forbidden or missing path, a
// template error. Once-mode fails at once; the sidecar reports it and retries slowly.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// errForbidden marks Vault's 403, which means either a policy that does not grant the path or
// a token that no longer works.
var errForbidden = errors.New("HTTP 403")

// answer sorts what Vault made of a request, for the two decisions the agent takes on errors:
// whether a fetch or renewal is worth retrying (classify) and whether a token renewal was
// refused (vaultRefused).
type answer int

const (
	noAnswer answer = iota // a network error, a timeout: no status
	busy                   // 429, 502, 503, 504: overloaded, sealed, between leaders; a retry outlasts it
	refused                // any other status of 400 and up (Vault answers a token past its max TTL with a 500)
)

// busyStatus are the statuses of a Vault that will answer differently later.
var busyStatus = map[int]bool{
	http.StatusTooManyRequests: true, http.StatusBadGateway: true,
	http.StatusServiceUnavailable: true, http.StatusGatewayTimeout: true,
}

// answerOf sorts err, and returns Vault's status when there is one.
func answerOf(err error) (answer, int) {
	var re *api.ResponseError
	switch {
	case !errors.As(err, &re):
		return noAnswer, 0
	case busyStatus[re.StatusCode]:
		return busy, re.StatusCode
	}
	return refused, re.StatusCode
}

// classify marks Vault's answers that retrying cannot change (4xx: a lease or token that is
// gone, a denial) as permanent; no answer, a busy Vault and other 5xx stay transient.
func classify(err error) error {
	if err == nil {
		return nil
	}
	kind, status := answerOf(err)
	switch {
	case kind != refused || status < 400 || status >= 500:
		return err
	case status == http.StatusForbidden:
		return &permanentError{fmt.Errorf("%w: %w", errForbidden, err)}
	}
	return &permanentError{err}
}

func isPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

func explainLogin(err error, id agentconfig.Identity, tokenFile string) error {
	var re *api.ResponseError
	if !errors.As(err, &re) {
		return fmt.Errorf("log in to Vault at %s (%s, role %q): %w", id.Address, id.AuthPath, id.Role, err)
	}
	ns, sa := serviceAccountOf(tokenFile)
	msg := strings.Join(re.Errors, "; ")
	switch {
	case re.StatusCode == http.StatusForbidden || re.StatusCode == http.StatusBadRequest && strings.Contains(msg, "not authorized"):
		return &permanentError{fmt.Errorf("Vault role %q at %s does not allow service account %s/%s (Vault said: %s)", id.Role, id.AuthPath, ns, sa, msg)}
	case re.StatusCode == http.StatusBadRequest && id.Method == agentconfig.MethodJWT && (strings.Contains(msg, "claim") || strings.Contains(msg, "aud")):
		return &permanentError{fmt.Errorf("Vault jwt role %q at %s refused the token of service account %s/%s: its bound claims or audiences do not match (Vault said: %s)", id.Role, id.AuthPath, ns, sa, msg)}
	case re.StatusCode == http.StatusBadRequest:
		return &permanentError{fmt.Errorf("Vault rejected login with role %q at %s for service account %s/%s: %s", id.Role, id.AuthPath, ns, sa, msg)}
	case re.StatusCode == http.StatusNotFound:
		return &permanentError{fmt.Errorf("no auth method mounted at %s on %s: %s", id.AuthPath, id.Address, msg)}
	}
	return fmt.Errorf("log in to Vault at %s (%s, role %q): HTTP %d: %s", id.Address, id.AuthPath, id.Role, re.StatusCode, msg)
}

func explainAccess(err error, verb, path string, id agentconfig.Identity) error {
	var re *api.ResponseError
	if errors.As(err, &re) {
		msg := strings.Join(re.Errors, "; ")
		switch re.StatusCode {
		case http.StatusForbidden:
			return &permanentError{fmt.Errorf("permission denied to %s %s: the policies of role %q do not allow it (%w)", verb, path, id.Role, errForbidden)}
		case http.StatusNotFound, http.StatusBadRequest, http.StatusMethodNotAllowed:
			return &permanentError{fmt.Errorf("%s %s: HTTP %d: %s", verb, path, re.StatusCode, msg)}
		}
		return fmt.Errorf("%s %s: HTTP %d: %s", verb, path, re.StatusCode, msg)
	}
	return fmt.Errorf("%s %s at %s: %w", verb, path, id.Address, err)
}

// serviceAccountOf reads namespace and name from the token's claims, unverified, only to make
// messages useful. It never logs the token.
func serviceAccountOf(tokenFile string) (namespace, name string) {
	namespace, name = "?", "?"
	b, err := os.ReadFile(tokenFile)
	if err != nil {
		return
	}
	parts := strings.Split(strings.TrimSpace(string(b)), ".")
	if len(parts) != 3 {
		return
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return
	}
	var claims struct {
		Sub string `json:"sub"`
		K8s struct {
			Namespace      string `json:"namespace"`
			ServiceAccount struct {
				Name string `json:"name"`
			} `json:"serviceaccount"`
		} `json:"kubernetes.io"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return
	}
	if claims.K8s.Namespace != "" {
		return claims.K8s.Namespace, claims.K8s.ServiceAccount.Name
	}
	// system:serviceaccount:<ns>:<name>
	if p := strings.Split(claims.Sub, ":"); len(p) == 4 {
		return p[2], p[3]
	}
	return
}
