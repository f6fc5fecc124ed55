package vaulttest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/vault/api"
)

// JWTClaimMappings map the kubernetes.io claims of a projected service-account token into the
// Vault token's metadata, so lookup-self and the audit log name the pod. docs/vault-setup.md
// documents the same mapping.
var JWTClaimMappings = map[string]string{
	"/kubernetes.io/namespace":           "namespace",
	"/kubernetes.io/serviceaccount/name": "service_account_name",
	"/kubernetes.io/pod/name":            "pod_name",
	"/kubernetes.io/pod/uid":             "pod_uid",
}

// EnableJWTAuth mounts Vault's jwt auth method at mount (e.g. "jwt") and has it validate tokens
// with the given PEM public key (the cluster's service-account signing key) and issuer: no
// TokenReview, no network.
func (s *Server) EnableJWTAuth(ctx context.Context, mount string, publicKeyPEM []byte, issuer string) error {
	c, err := s.Client()
	if err != nil {
		return err
	}
	if err := c.Sys().EnableAuthWithOptionsWithContext(ctx, mount, &api.EnableAuthOptions{Type: "jwt"}); err != nil {
		return fmt.Errorf("enable jwt auth at %s: %w", mount, err)
	}
	if _, err := c.Logical().WriteWithContext(ctx, "auth/"+mount+"/config", map[string]any{
		"jwt_validation_pubkeys": []string{string(publicKeyPEM)},
		"bound_issuer":           issuer,
	}); err != nil {
		return fmt.Errorf("configure jwt auth: %w", err)
	}
	return nil
}

// JWTRole creates a jwt-auth role for the service account namespace/serviceAccount: the
// audience must match, sub and the kubernetes.io claims are bound, the pod is mapped into
// the token metadata, and policy (HCL) becomes the policy named like the role.
func (s *Server) JWTRole(ctx context.Context, mount, role, audience, namespace, serviceAccount, policy string) error {
	c, err := s.Client()
	if err != nil {
		return err
	}
	if err := c.Sys().PutPolicyWithContext(ctx, role, policy); err != nil {
		return fmt.Errorf("policy %s: %w", role, err)
	}
	if _, err := c.Logical().WriteWithContext(ctx, "auth/"+mount+"/role/"+role, map[string]any{
		"role_type":       "jwt",
		"bound_audiences": []string{audience},
		"user_claim":      "sub",
		"bound_subject":   "system:serviceaccount:" + namespace + ":" + serviceAccount,
		"bound_claims": map[string]any{
			"/kubernetes.io/namespace":           namespace,
			"/kubernetes.io/serviceaccount/name": serviceAccount,
		},
		"claim_mappings": JWTClaimMappings,
		"token_policies": []string{role},
		"token_ttl":      "1h",
	}); err != nil {
		return fmt.Errorf("jwt role %s: %w", role, err)
	}
	return nil
}

// JWTSigner signs service-account-shaped tokens with its own ECDSA key, as a cluster's token
// signer does (ES256), for tests of jwt auth without a cluster.
type JWTSigner struct {
	Issuer       string
	PublicKeyPEM []byte
	key          *ecdsa.PrivateKey
}

// NewJWTSigner returns a signer with a fresh P-256 key.
func NewJWTSigner(issuer string) (*JWTSigner, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	return &JWTSigner{Issuer: issuer, key: key, PublicKeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})}, nil
}

// Mint returns a signed token with the claims the kubelet's projected tokens carry.
func (j *JWTSigner) Mint(audience, namespace, serviceAccount, pod string) (string, error) {
	now := time.Now()
	claims := map[string]any{
		"iss": j.Issuer, "sub": "system:serviceaccount:" + namespace + ":" + serviceAccount,
		"aud": []string{audience}, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
		"kubernetes.io": map[string]any{
			"namespace":      namespace,
			"serviceaccount": map[string]any{"name": serviceAccount, "uid": randomHex(8)},
			"pod":            map[string]any{"name": pod, "uid": randomHex(8)},
		},
	}
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signed := enc(map[string]string{"alg": "ES256", "typ": "JWT"}) + "." + enc(claims)
	sum := sha256.Sum256([]byte(signed))
	r, s, err := ecdsa.Sign(rand.Reader, j.key, sum[:])
	if err != nil {
		return "", err
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// MintFile writes a minted token to dir/name and returns the file's path.
func (j *JWTSigner) MintFile(dir, name, audience, namespace, serviceAccount, pod string) (string, error) {
	tok, err := j.Mint(audience, namespace, serviceAccount, pod)
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, name)
	return p, os.WriteFile(p, []byte(tok), 0o600)
}
