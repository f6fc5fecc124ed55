// Package vaulttest starts a real Vault server in dev mode on loopback for tests (HTTP, or
// HTTPS with a CA of its own), from the binary `make tools` builds, and a TokenReview stand-in
// so Vault's kubernetes auth works in tests that run without a cluster.
package vaulttest

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// Version matches test/tools/build.sh.
const Version = "v1.19.5"

// RootToken is the dev server's root token.
const RootToken = "e2e-root-token"

// ConsulTemplateVersion matches test/tools/build.sh.
const ConsulTemplateVersion = "v0.41.1"

// Flavour is the vault build's cache-key suffix (test/tools/build.sh, VAULT_FLAVOUR): Vault's
// minimal server with kubernetes auth and the PostgreSQL database plugin built in, as in a
// released Vault.
const Flavour = "minimal-builtins"

// Binary returns the vault binary built by `make tools`.
func Binary() (string, error) { return tool("vault", Version+"-"+Flavour) }

// ConsulTemplateBinary returns the consul-template binary built by `make tools`, the reference
// the agent's rendering is compared with.
func ConsulTemplateBinary() (string, error) {
	return tool("consul-template", ConsulTemplateVersion)
}

func tool(name, version string) (string, error) {
	dir := os.Getenv("VAULT_INJECTOR_CACHE")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "vault-injector")
	}
	d := filepath.Join(dir, "tools", name+"-"+version)
	if _, err := os.Stat(filepath.Join(d, ".done")); err != nil {
		return "", fmt.Errorf("%s %s is not built in %s: run make tools", name, version, d)
	}
	return filepath.Join(d, "bin", name), nil
}

// Server is a running dev-mode Vault.
type Server struct {
	Addr      string // http://127.0.0.1:<port>, https with StartTLS
	CACert    string // the CA of a StartTLS server
	RootToken string
	cmd       *exec.Cmd
	logPath   string
	done      chan struct{}
}

// Start runs `vault server -dev` with its log in dir and waits until it serves.
func Start(ctx context.Context, dir string) (*Server, error) { return start(ctx, dir, false) }

// StartTLS is Start serving HTTPS with a CA of its own (`-dev-tls`), written to CACert.
func StartTLS(ctx context.Context, dir string) (*Server, error) { return start(ctx, dir, true) }

func start(ctx context.Context, dir string, tls bool) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	return startOn(ctx, bin, dir, port, tls)
}

// StartOn starts Vault on a given loopback port (tests that restart Vault reuse its port).
func StartOn(ctx context.Context, bin, dir, port string) (*Server, error) {
	return startOn(ctx, bin, dir, port, false)
}

func startOn(ctx context.Context, bin, dir, port string, tls bool) (*Server, error) {
	logPath := filepath.Join(dir, "vault-"+port+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	args := []string{"server", "-dev", "-dev-listen-address=127.0.0.1:" + port, "-dev-root-token-id=" + RootToken, "-dev-no-store-token"}
	scheme, caCert := "http", ""
	if tls {
		certDir := filepath.Join(dir, "vault-tls-"+port)
		if err := os.MkdirAll(certDir, 0o700); err != nil {
			return nil, err
		}
		args = append(args, "-dev-tls", "-dev-tls-cert-dir="+certDir)
		scheme, caCert = "https", filepath.Join(certDir, "vault-ca.pem")
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// Vault must not pick up a developer's VAULT_* settings, and HOME must be writable.
	cmd.Env = []string{"HOME=" + dir, "PATH=/usr/bin:/bin", "SKIP_SETCAP=1"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start vault: %w", err)
	}
	s := &Server{Addr: scheme + "://127.0.0.1:" + port, CACert: caCert, RootToken: RootToken, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(s.done) }()
	// Vault creates the CA file before it has written it: wait until it holds a whole
	// certificate, not only until it exists (a client reading it half-written fails).
	for wait := time.Now().Add(30 * time.Second); caCert != ""; time.Sleep(50 * time.Millisecond) {
		if pem, err := os.ReadFile(caCert); err == nil && x509.NewCertPool().AppendCertsFromPEM(pem) {
			break
		}
		if time.Now().After(wait) {
			s.Stop()
			return nil, fmt.Errorf("vault wrote no CA to %s in 30s: %s", caCert, s.Logs())
		}
	}
	c, err := s.Client()
	if err != nil {
		s.Stop()
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		h, err := c.Sys().HealthWithContext(ctx)
		if err == nil && h.Initialized && !h.Sealed {
			return s, nil
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("vault exited: %s", s.Logs())
		default:
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("vault not ready after 30s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// StartT starts Vault for one test and stops it at cleanup.
func StartT(t testing.TB) *Server {
	t.Helper()
	s, err := Start(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("vault log:\n%s", s.Logs())
		}
		s.Stop()
	})
	return s
}

// Client returns a client with the root token.
func (s *Server) Client() (*api.Client, error) {
	cfg := api.DefaultConfig()
	cfg.Address = s.Addr
	if s.CACert != "" {
		if err := cfg.ConfigureTLS(&api.TLSConfig{CACert: s.CACert}); err != nil {
			return nil, err
		}
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	c.SetToken(s.RootToken)
	return c, nil
}

// Port is the loopback port Vault listens on.
func (s *Server) Port() string { return s.Addr[strings.LastIndex(s.Addr, ":")+1:] }

// Stop stops the server and waits for it.
func (s *Server) Stop() error {
	select {
	case <-s.done:
		return nil
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
	return nil
}

// PID is the server's process ID.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Logs returns the server's output.
func (s *Server) Logs() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return err.Error()
	}
	return string(b)
}
