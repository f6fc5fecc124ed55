package agent

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/vault-injector/vault-injector/agentconfig"
)

// vaultTimeout bounds one request to Vault; the agent's own backoff handles retries.
const vaultTimeout = 60 * time.Second

// newVaultClient builds a Vault client from the identity alone. The Vault library's defaults
// read the process environment (VAULT_ADDR, VAULT_AGENT_ADDR, VAULT_PROXY_ADDR, VAULT_CACERT,
// VAULT_SKIP_VERIFY, VAULT_TLS_SERVER_NAME, VAULT_NAMESPACE, VAULT_HEADERS, VAULT_TOKEN, …) and
// its HTTP transport honours HTTPS_PROXY: any of those would let an environment value decide
// where the pod's service-account token and Vault token go, or how Vault's certificate is
// checked. So the address, TLS settings and transport are set here explicitly, with no proxy,
// and what NewClient still takes from the environment (token, namespace, headers) is reset.
func newVaultClient(id agentconfig.Identity) (*api.Client, error) {
	tlsCfg, err := vaultTLS(id)
	if err != nil {
		return nil, fmt.Errorf("identity %q: TLS settings: %w", id.Name, err)
	}
	transport := &http.Transport{
		Proxy:               nil, // never from the environment
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     90 * time.Second,
	}
	cfg := &api.Config{
		Address: id.Address,
		HttpClient: &http.Client{
			Transport: transport,
			// The Vault client follows Vault's redirects itself (standby forwarding).
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		Timeout:    vaultTimeout,
		MaxRetries: 0, // the agent has its own backoff and wants to report each failure
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("identity %q: Vault client for %s: %w", id.Name, id.Address, err)
	}
	c.ClearToken()
	c.SetHeaders(http.Header{api.RequestHeaderName: {"true"}})
	if id.Namespace != "" {
		c.SetNamespace(id.Namespace)
	} else {
		c.ClearNamespace()
	}
	return c, nil
}

// SystemCAFile is the CA bundle the product image ships. The agent reads it by this fixed path
// rather than through Go's system pool, which SSL_CERT_FILE and SSL_CERT_DIR could replace.
var SystemCAFile = "/etc/ssl/certs/ca-certificates.crt"

// vaultTLS is the identity's TLS configuration: its CA file (else the image's CA bundle), its
// server name, and skip-verify only when the identity asks for it.
func vaultTLS(id agentconfig.Identity) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: id.TLSServerName, InsecureSkipVerify: id.TLSSkipVerify}
	if id.TLSSkipVerify || !strings.HasPrefix(id.Address, "https:") {
		return cfg, nil
	}
	file := id.CACertFile
	if file == "" {
		file = SystemCAFile
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", file)
	}
	cfg.RootCAs = pool
	return cfg, nil
}
