package ociimage

import (
	"archive/tar"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	_ "embed"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// letsEncryptR11 is a real public intermediate (Let's Encrypt R11, 2024-03-13 to 2027-03-12),
// signed by ISRG Root X1: what a publicly trusted Vault's chain hangs from.
//
//go:embed testdata/letsencrypt-r11.pem
var letsEncryptR11 []byte

// pinned is a time at which R11 is valid, so the test does not depend on the clock.
var pinned = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

// helperEnv makes the test binary act as a process started in the image (see TestMain).
const helperEnv = "OCIIMAGE_SYSTEM_POOL_CHECK"

// TestMain lets TestProductImageSystemPool re-run this binary as a fresh process whose system
// pool is built from the image's file, the way the agent's is.
func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		if err := verifyWithSystemPool(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func verifyWithSystemPool() error {
	r11, err := parsePEM(letsEncryptR11)
	if err != nil {
		return err
	}
	// Roots nil: the system pool, which Go builds from SSL_CERT_FILE / the distribution paths.
	if _, err := r11.Verify(x509.VerifyOptions{CurrentTime: pinned}); err != nil {
		return fmt.Errorf("system pool does not verify Let's Encrypt R11: %w", err)
	}
	return nil
}

func parsePEM(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	return x509.ParseCertificate(block.Bytes)
}

// imageFile builds the product image tarball and returns one file of its layer.
func imageFile(t *testing.T, path string) (*tar.Header, []byte) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "vault-injector")
	for _, f := range []string{bin, filepath.Join(dir, AgentBinary), filepath.Join(dir, WebhookBinary)} {
		if err := os.WriteFile(f, []byte("not really a binary"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "image.tar")
	if err := Write(out, Product("example.test/vault-injector:test", bin)); err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	return fileInImage(t, img, path)
}

// fileInImage returns one file of the image's only layer.
func fileInImage(t *testing.T, img v1.Image, path string) (*tar.Header, []byte) {
	t.Helper()
	hdr, b, err := ReadFile(img, path)
	if err != nil {
		t.Fatal(err)
	}
	return hdr, b
}

func selfSigned(t *testing.T) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "not a public CA"},
		NotBefore: pinned.Add(-time.Hour), NotAfter: pinned.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestProductImageTrustsPublicCAs reads the CA file out of the built image: it loads as a
// pool that verifies a real public intermediate, and only that.
func TestProductImageTrustsPublicCAs(t *testing.T) {
	if got, want := "/"+CABundlePath, "/etc/ssl/certs/ca-certificates.crt"; got != want {
		t.Fatalf("CA bundle at %s; Go's crypto/x509 reads %s first on Linux", got, want)
	}
	hdr, content := imageFile(t, CABundlePath)
	if hdr.Mode&0o444 != 0o444 {
		t.Errorf("%s has mode %o: the non-root user must read it", CABundlePath, hdr.Mode)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(content) {
		t.Fatal("the image's CA bundle holds no certificate")
	}
	if n := strings.Count(string(content), "-----BEGIN CERTIFICATE-----"); n < 50 {
		t.Errorf("the image's CA bundle holds %d certificates, want the public root store (over 100)", n)
	}
	r11, err := parsePEM(letsEncryptR11)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		cert    *x509.Certificate
		at      time.Time
		wantErr string
	}{
		{"public intermediate", r11, pinned, ""},
		{"public intermediate after it expired", r11, time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC), "expired"},
		{"self-signed CA", selfSigned(t), pinned, "unknown authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: tc.at})
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("not verified by the image's CAs: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

// TestProductImageSystemPool: a fresh process that builds Go's system pool from the image's
// file (as the agent does when no CA is configured) verifies the public intermediate.
func TestProductImageSystemPool(t *testing.T) {
	_, content := imageFile(t, CABundlePath)
	file := filepath.Join(t.TempDir(), "ca-certificates.crt")
	if err := os.WriteFile(file, content, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	// SSL_CERT_DIR points nowhere so that only the image's file can make the pool.
	cmd.Env = append(os.Environ(), helperEnv+"=1", "SSL_CERT_FILE="+file, "SSL_CERT_DIR="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("system pool from the image's CA file: %v\n%s", err, out)
	}
	// And the check can fail: with an empty file the same process refuses R11.
	empty := filepath.Join(t.TempDir(), "empty.crt")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1", "SSL_CERT_FILE="+empty, "SSL_CERT_DIR="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("the helper verified R11 with an empty system pool: the check proves nothing\n%s", out)
	}
}
