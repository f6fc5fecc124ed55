package certs

import (
	"crypto/tls"
	"crypto/x509"
	"time"
)

// serve switches the served certificate to the Secret's, unless the API server may not trust
// it yet. seen is the caBundle this replica had seen before this pass; bundle is the one this
// pass publishes.
//
// A certificate whose CA was not in seen waits (the current one is served) while the current
// one is unexpired and trusted by bundle: caBundle may have been written just now by this
// pass, and the API server picks it up a moment later. This is the successor CA's rule
// ("signs only once seen in caBundle") applied to serving, and matters when a CA is made from
// scratch (the Secret was deleted or is unusable): its certificate is served from the next
// pass on, while the old CA stays in caBundle. It says whether the switch is waiting.
func (s *SelfManaged) serve(st *state, seen, bundle []byte, now time.Time) bool {
	c := s.cur.Load()
	if c != nil && c.Leaf != nil && c.Leaf.Equal(st.leaf.cert) {
		return false
	}
	if c != nil && c.Leaf != nil && s.opts.WebhookConfigName != "" && !signedByOneOf(st.leaf.cert, seen) &&
		now.Before(c.Leaf.NotAfter) && signedByOneOf(c.Leaf, bundle) {
		s.log.Info("new serving certificate waits until its CA has been seen in caBundle; serving the current one",
			"serial", st.leaf.cert.SerialNumber.Text(16), "issuer", st.leaf.cert.Issuer.CommonName)
		return true
	}
	pair, err := tls.X509KeyPair(st.leaf.certPEM, st.leaf.keyPEM)
	if err != nil { // parseKeyPair or newLeaf already checked it
		s.log.Error("serving certificate unusable; keeping the previous one", "error", err.Error())
		return false
	}
	first := c == nil
	s.cur.Store(&pair)
	msg := "serving certificate switched"
	if first {
		msg = "serving certificate loaded"
	}
	s.log.Info(msg, "serial", pair.Leaf.SerialNumber.Text(16), "issuer", pair.Leaf.Issuer.CommonName, "not_after", ts(pair.Leaf.NotAfter))
	return false
}

// signedByOneOf reports whether a CA of the PEM bundle signed leaf.
func signedByOneOf(leaf *x509.Certificate, bundle []byte) bool {
	cas, err := parseCerts(bundle)
	if err != nil {
		return false
	}
	for _, ca := range cas {
		if leaf.CheckSignatureFrom(ca) == nil {
			return true
		}
	}
	return false
}
