package certs

import (
	"crypto/x509"
	"errors"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// state is the Secret's content, parsed.
type state struct {
	ca, next, leaf *keyPair
	bundle         []*x509.Certificate
}

// fresh is a new CA and serving certificate; the bundle also keeps the live CAs.
func (s *SelfManaged) fresh(now time.Time, live []*x509.Certificate) (*state, error) {
	ca, err := newCA(now, s.opts.CALifetime)
	if err != nil {
		return nil, err
	}
	leaf, err := newLeaf(ca, now, s.opts.LeafLifetime, s.dns, s.opts.IPAddresses)
	if err != nil {
		return nil, err
	}
	return &state{ca: ca, leaf: leaf, bundle: append([]*x509.Certificate{ca.cert}, live...)}, nil
}

// parse reads what it can of the Secret; advance replaces what is missing or broken. Each
// unusable part is logged once per pass with the key it came from (never its content).
func (s *SelfManaged) parse(sec *corev1.Secret) *state {
	st := &state{}
	d := sec.Data
	bad := func(key, what string, err error) {
		s.log.Warn("unusable "+what+" in the secret; replacing it", "key", key, "error", err.Error())
	}
	var err error
	if st.ca, err = parseKeyPair(d[SecretKeyCACert], d[SecretKeyCAKey]); err != nil {
		if len(d[SecretKeyCACert])+len(d[SecretKeyCAKey]) > 0 {
			bad(SecretKeyCACert+"/"+SecretKeyCAKey, "CA", err)
		}
	} else if !st.ca.cert.IsCA {
		bad(SecretKeyCACert, "CA", errors.New("certificate is not a CA"))
		st.ca = nil
	}
	if len(d[SecretKeyNextCACert])+len(d[SecretKeyNextCAKey]) > 0 {
		if st.next, err = parseKeyPair(d[SecretKeyNextCACert], d[SecretKeyNextCAKey]); err != nil {
			bad(SecretKeyNextCACert+"/"+SecretKeyNextCAKey, "successor CA", err)
		} else if !st.next.cert.IsCA {
			bad(SecretKeyNextCACert, "successor CA", errors.New("certificate is not a CA"))
			st.next = nil
		}
	}
	if st.leaf, err = parseKeyPair(d[SecretKeyCert], d[SecretKeyKey]); err != nil && len(d[SecretKeyCert])+len(d[SecretKeyKey]) > 0 {
		bad(SecretKeyCert+"/"+SecretKeyKey, "serving certificate", err)
	}
	if len(d[SecretKeyCABundle]) > 0 {
		if st.bundle, err = parseCerts(d[SecretKeyCABundle]); err != nil {
			bad(SecretKeyCABundle, "CA bundle", err)
			st.bundle = nil
		}
	}
	return st
}

func mustParse(bundle []byte) []*x509.Certificate {
	c, _ := parseCerts(bundle)
	return c
}

// store writes st into the Secret (keeping keys that are not ours).
func (s *SelfManaged) store(sec *corev1.Secret, st *state) {
	d := map[string][]byte{}
	for k, v := range sec.Data {
		d[k] = v
	}
	d[SecretKeyCert], d[SecretKeyKey] = st.leaf.certPEM, st.leaf.keyPEM
	d[SecretKeyCACert], d[SecretKeyCAKey] = st.ca.certPEM, st.ca.keyPEM
	if st.next != nil {
		d[SecretKeyNextCACert], d[SecretKeyNextCAKey] = st.next.certPEM, st.next.keyPEM
	} else {
		delete(d, SecretKeyNextCACert)
		delete(d, SecretKeyNextCAKey)
	}
	d[SecretKeyCABundle] = encodeBundle(st.bundle)
	sec.Data = d
	if sec.Labels == nil {
		sec.Labels = map[string]string{}
	}
	sec.Labels["app.kubernetes.io/managed-by"] = "vault-injector"
	if sec.Annotations == nil {
		sec.Annotations = map[string]string{}
	}
	sec.Annotations["vault-injector.io/cert-not-after"] = ts(st.leaf.cert.NotAfter)
	sec.Annotations["vault-injector.io/ca-not-after"] = ts(st.ca.cert.NotAfter)
}
