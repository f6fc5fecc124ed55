package certs

import (
	"crypto/tls"
)

// serve switches the served certificate if the Secret's differs.
func (s *SelfManaged) serve(st *state) {
	if c := s.cur.Load(); c != nil && c.Leaf != nil && c.Leaf.Equal(st.leaf.cert) {
		return
	}
	pair, err := tls.X509KeyPair(st.leaf.certPEM, st.leaf.keyPEM)
	if err != nil { // parseKeyPair or newLeaf already checked it
		s.log.Error("serving certificate unusable; keeping the previous one", "error", err.Error())
		return
	}
	first := s.cur.Load() == nil
	s.cur.Store(&pair)
	msg := "serving certificate switched"
	if first {
		msg = "serving certificate loaded"
	}
	s.log.Info(msg, "serial", pair.Leaf.SerialNumber.Text(16), "issuer", pair.Leaf.Issuer.CommonName, "not_after", ts(pair.Leaf.NotAfter))
}
