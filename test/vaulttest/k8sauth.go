package vaulttest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
)

// TokenReviewer stands in for the Kubernetes API server's TokenReview endpoint so the agent's
// kubernetes-auth login can be tested against a real Vault without a cluster (the e2e suite
// does the same against a real API server). It serves HTTPS on loopback and authenticates only
// the tokens it minted, so a forged or unknown token is refused just as the API server would.
type TokenReviewer struct {
	URL   string
	CAPEM []byte

	srv     *httptest.Server
	mu      sync.Mutex
	tokens  map[string]serviceAccount
	reviews int
}

type serviceAccount struct{ namespace, name, uid string }

// StartTokenReviewer starts the fake TokenReview endpoint.
func StartTokenReviewer() *TokenReviewer {
	r := &TokenReviewer{tokens: map[string]serviceAccount{}}
	r.srv = httptest.NewTLSServer(http.HandlerFunc(r.serve))
	r.URL = r.srv.URL
	r.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.srv.Certificate().Raw})
	return r
}

// Close stops the server.
func (r *TokenReviewer) Close() { r.srv.Close() }

// Reviews is how many TokenReviews Vault sent.
func (r *TokenReviewer) Reviews() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reviews
}

// Mint returns a service-account token (JWT-shaped, with the claims Vault reads) for
// namespace/name that this reviewer will vouch for.
func (r *TokenReviewer) Mint(namespace, name string) string {
	uid := randomHex(8)
	now := time.Now()
	claims := map[string]any{
		"iss": "https://kubernetes.default.svc",
		"sub": "system:serviceaccount:" + namespace + ":" + name,
		"aud": []string{"vault"},
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"kubernetes.io": map[string]any{
			"namespace":      namespace,
			"serviceaccount": map[string]any{"name": name, "uid": uid},
		},
	}
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	tok := enc(map[string]string{"alg": "RS256", "kid": "test"}) + "." + enc(claims) + "." + base64.RawURLEncoding.EncodeToString([]byte(randomHex(32)))
	r.mu.Lock()
	r.tokens[tok] = serviceAccount{namespace, name, uid}
	r.mu.Unlock()
	return tok
}

// MintFile writes a minted token to dir/token and returns the file's path.
func (r *TokenReviewer) MintFile(dir, namespace, name string) (string, error) {
	p := filepath.Join(dir, "sa-token")
	return p, os.WriteFile(p, []byte(r.Mint(namespace, name)), 0o600)
}

func (r *TokenReviewer) serve(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != "/apis/authentication.k8s.io/v1/tokenreviews" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	var review struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Spec       struct {
			Token     string   `json:"token"`
			Audiences []string `json:"audiences"`
		} `json:"spec"`
	}
	if err := json.NewDecoder(req.Body).Decode(&review); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.reviews++
	sa, ok := r.tokens[review.Spec.Token]
	r.mu.Unlock()
	status := map[string]any{"authenticated": false, "error": "token not issued by this cluster"}
	if ok {
		status = map[string]any{
			"authenticated": true,
			"audiences":     review.Spec.Audiences,
			"user": map[string]any{
				"username": "system:serviceaccount:" + sa.namespace + ":" + sa.name,
				"uid":      sa.uid,
				"groups":   []string{"system:serviceaccounts", "system:serviceaccounts:" + sa.namespace},
			},
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status,
	})
}

// EnableKubernetesAuth mounts the kubernetes auth method at mount (e.g. "kubernetes") and
// points it at the reviewer.
func (s *Server) EnableKubernetesAuth(ctx context.Context, r *TokenReviewer, mount string) error {
	c, err := s.Client()
	if err != nil {
		return err
	}
	if err := c.Sys().EnableAuthWithOptionsWithContext(ctx, mount, &api.EnableAuthOptions{Type: "kubernetes"}); err != nil {
		return fmt.Errorf("enable kubernetes auth at %s: %w", mount, err)
	}
	if _, err := c.Logical().WriteWithContext(ctx, "auth/"+mount+"/config", map[string]any{
		"kubernetes_host":    r.URL,
		"kubernetes_ca_cert": string(r.CAPEM),
		// The reviewer accepts any caller; Vault needs some JWT to send.
		"token_reviewer_jwt":     "reviewer",
		"disable_local_ca_jwt":   true,
		"disable_iss_validation": true,
	}); err != nil {
		return fmt.Errorf("configure kubernetes auth: %w", err)
	}
	return nil
}

// Role creates a kubernetes-auth role bound to namespace/serviceAccount with the given policy
// text (HCL) as the policy named like the role.
func (s *Server) Role(ctx context.Context, mount, role, namespace, serviceAccount, policy string, extra map[string]any) error {
	c, err := s.Client()
	if err != nil {
		return err
	}
	if err := c.Sys().PutPolicyWithContext(ctx, role, policy); err != nil {
		return fmt.Errorf("policy %s: %w", role, err)
	}
	body := map[string]any{
		"bound_service_account_names":      serviceAccount,
		"bound_service_account_namespaces": namespace,
		"token_policies":                   role,
		"token_ttl":                        "1h",
	}
	for k, v := range extra {
		body[k] = v
	}
	if _, err := c.Logical().WriteWithContext(ctx, "auth/"+mount+"/role/"+role, body); err != nil {
		return fmt.Errorf("role %s: %w", role, err)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
