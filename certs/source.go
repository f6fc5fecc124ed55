package certs

import "crypto/tls"

// Source serves the webhook's current certificate. Its GetCertificate is plugged into
// tls.Config.GetCertificate, which is asked on every handshake, so a renewed or rotated
// certificate is served without a restart.
type Source interface {
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
}

var (
	_ Source = (*FileSource)(nil)
	_ Source = (*SelfManaged)(nil)
)
