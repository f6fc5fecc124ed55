package ociimage

import (
	"bytes"
	"encoding/pem"
	"fmt"

	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// CABundlePath is where the product image keeps the public CAs: the first file Go's
// crypto/x509 reads for the system pool on Linux (and where Debian-based tools look), so the
// agent verifies a publicly trusted Vault with no flag, and pays nothing for it unless it
// builds the system pool.
const CABundlePath = "etc/ssl/certs/ca-certificates.crt"

// CABundle is the Mozilla (NSS) root store as PEM, from the pinned Go module
// golang.org/x/crypto/x509roots/fallback: updating that module in go.mod updates the image.
//
// Roots that NSS trusts only with an extra constraint (a distrust-after date for certificates
// issued later) are left out: a PEM file cannot carry the constraint, and trusting such a
// root without it would accept certificates that browsers refuse.
func CABundle() ([]byte, error) {
	var buf bytes.Buffer
	n := 0
	for r := range bundle.Roots() {
		if r.Constraint != nil {
			continue
		}
		if err := pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: r.Certificate}); err != nil {
			return nil, fmt.Errorf("encode root certificate %d: %w", n, err)
		}
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("CA bundle: golang.org/x/crypto/x509roots/fallback yielded no unconstrained root")
	}
	return buf.Bytes(), nil
}
