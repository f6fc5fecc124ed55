package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"strings"
	"time"
)

// backdate is subtracted from NotBefore so that a verifier whose clock is a little behind ours
// still accepts a certificate issued a moment ago. Renewal times are computed from NotAfter
// and the configured lifetimes, never from NotBefore.
const backdate = 5 * time.Minute

// keyPair is a certificate with its private key, parsed and as PEM.
type keyPair struct {
	cert    *x509.Certificate
	key     crypto.Signer
	certPEM []byte
	keyPEM  []byte
}

// newCA returns a self-signed ECDSA P-256 CA valid for lifetime from now. Its common name
// carries the issue time, so successive CAs are told apart in logs.
func newCA(now time.Time, lifetime time.Duration) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "vault-injector-ca@" + now.UTC().Format("20060102T150405Z"), Organization: []string{"vault-injector"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(lifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	return assemble(der, key)
}

// newLeaf returns a serving certificate signed by ca for the given names, valid for lifetime
// from now but never beyond the CA.
func newLeaf(ca *keyPair, now time.Time, lifetime time.Duration, dnsNames []string, ips []net.IP) (*keyPair, error) {
	if len(dnsNames) == 0 && len(ips) == 0 {
		return nil, errors.New("serving certificate: no DNS name or IP address")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate serving key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	cn := ""
	if len(dnsNames) > 0 {
		cn = dnsNames[0]
	} else {
		cn = ips[0].String()
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"vault-injector"}},
		NotBefore:    now.Add(-backdate),
		NotAfter:     leafNotAfter(ca, now, lifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     dnsNames,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, fmt.Errorf("create serving certificate: %w", err)
	}
	return assemble(der, key)
}

// leafNotAfter is when a leaf issued now would expire: lifetime, capped at the CA's expiry.
func leafNotAfter(ca *keyPair, now time.Time, lifetime time.Duration) time.Time {
	na := now.Add(lifetime).Truncate(time.Second) // as x509 encodes it
	if ca.cert.NotAfter.Before(na) {
		na = ca.cert.NotAfter
	}
	return na
}

func assemble(der []byte, key *ecdsa.PrivateKey) (*keyPair, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse generated certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode generated key: %w", err)
	}
	return &keyPair{
		cert:    cert,
		key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

func randomSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	return n, nil
}

// parseKeyPair parses a PEM certificate (the first block) and its PEM private key, and checks
// that they belong together. Its errors never quote the key.
func parseKeyPair(certPEM, keyPEM []byte) (*keyPair, error) {
	if len(certPEM) == 0 {
		return nil, errors.New("certificate missing")
	}
	if len(keyPEM) == 0 {
		return nil, errors.New("private key missing")
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, errors.New("private key cannot sign")
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, err
		}
	}
	return &keyPair{cert: leaf, key: signer, certPEM: certPEM, keyPEM: keyPEM}, nil
}

// parseCerts returns every CERTIFICATE block of a PEM bundle. A bundle with no certificate,
// or with a block that does not parse, is an error.
func parseCerts(bundle []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := bundle
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return out, nil
}

// encodeBundle returns the PEM bundle of certs, oldest NotBefore first and duplicates dropped,
// so the bytes do not change when the newer of two CAs becomes the signing one.
func encodeBundle(certs []*x509.Certificate) []byte {
	cs := slices.Clone(certs)
	slices.SortStableFunc(cs, func(a, b *x509.Certificate) int {
		if c := a.NotBefore.Compare(b.NotBefore); c != 0 {
			return c
		}
		return bytes.Compare(a.Raw, b.Raw)
	})
	var buf bytes.Buffer
	var prev []byte
	for _, c := range cs {
		if bytes.Equal(c.Raw, prev) {
			continue
		}
		prev = c.Raw
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return buf.Bytes()
}

// bundleContains reports whether a PEM bundle holds cert.
func bundleContains(bundle []byte, cert *x509.Certificate) bool {
	certs, err := parseCerts(bundle)
	if err != nil {
		return false
	}
	for _, c := range certs {
		if c.Equal(cert) {
			return true
		}
	}
	return false
}

// fingerprint is a short SHA-256 of a certificate, for logs.
func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:8])
}

// describe names the certificates of a bundle for logs: common name and fingerprint.
func describe(certs []*x509.Certificate) string {
	var names []string
	for _, c := range certs {
		names = append(names, c.Subject.CommonName+"/"+fingerprint(c))
	}
	return strings.Join(names, ",")
}

// coversNames reports whether a certificate carries at least these SANs (a certificate issued
// by a replica configured with more names is fine for us, so replicas mid-upgrade do not fight).
func coversNames(c *x509.Certificate, dnsNames []string, ips []net.IP) bool {
	for _, n := range dnsNames {
		if !slices.Contains(c.DNSNames, n) {
			return false
		}
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}
