package certs

import (
	"bytes"
	"crypto/x509"
	"time"
)

// Rotation times, all relative to expiry so that they do not depend on NotBefore (backdated).
func (s *SelfManaged) leafRenewAt(leaf *x509.Certificate) time.Time {
	return leaf.NotAfter.Add(-s.opts.LeafLifetime / 3)
}
func (s *SelfManaged) caRotateAt(ca *x509.Certificate) time.Time {
	return ca.NotAfter.Add(-s.opts.CALifetime / 3)
}
func (s *SelfManaged) caSwitchAt(ca *x509.Certificate) time.Time {
	return ca.NotAfter.Add(-s.opts.CALifetime / 6)
}

// advance renews and rotates what is due at now, in place, and says what it changed.
func (s *SelfManaged) advance(st *state, now time.Time) ([]string, error) {
	var changes []string
	o := &s.opts
	before := encodeBundle(st.bundle)

	if st.next != nil && !now.Before(st.next.cert.NotAfter) {
		st.next = nil
		changes = append(changes, "expired successor CA dropped")
	}
	// The signing CA.
	switch {
	case st.ca == nil || !now.Before(st.ca.cert.NotAfter):
		why := "none usable"
		if st.ca != nil {
			why = "expired"
			s.log.Warn("the CA expired before it was rotated (were all replicas down?); admissions may fail until caBundle is updated", "ca", describe([]*x509.Certificate{st.ca.cert}))
		}
		if st.next != nil {
			st.ca, st.next = st.next, nil
			changes = append(changes, "CA "+why+": successor CA signs now")
			break
		}
		ca, err := newCA(now, o.CALifetime)
		if err != nil {
			return nil, err
		}
		st.ca = ca
		changes = append(changes, "CA "+why+": new CA")
	}
	// Its successor: published first, signing later.
	if st.next == nil && !now.Before(s.caRotateAt(st.ca.cert)) {
		next, err := newCA(now, o.CALifetime)
		if err != nil {
			return nil, err
		}
		st.next = next
		changes = append(changes, "successor CA "+describe([]*x509.Certificate{next.cert})+" added to the bundle")
	}
	if st.next != nil && !now.Before(s.caSwitchAt(st.ca.cert)) {
		if o.WebhookConfigName == "" || bundleContains(s.trusted, st.next.cert) {
			changes = append(changes, "successor CA "+describe([]*x509.Certificate{st.next.cert})+" signs now")
			st.bundle = append(st.bundle, st.ca.cert) // the old CA stays trusted until it expires
			st.ca, st.next = st.next, nil
		} else {
			s.log.Info("successor CA due to sign but not yet seen in caBundle; waiting", "ca", describe([]*x509.Certificate{st.next.cert}))
		}
	}

	// The serving certificate.
	reason := ""
	switch {
	case st.leaf == nil:
		reason = "new serving certificate (none usable)"
	case st.leaf.cert.CheckSignatureFrom(st.ca.cert) != nil:
		reason = "serving certificate re-issued by the signing CA"
	case !coversNames(st.leaf.cert, s.dns, o.IPAddresses):
		reason = "serving certificate re-issued for new names"
	case !now.Before(s.leafRenewAt(st.leaf.cert)) && leafNotAfter(st.ca, now, o.LeafLifetime).After(st.leaf.cert.NotAfter):
		// A certificate capped at its CA's expiry cannot be improved by that CA: it is
		// re-issued when the successor CA starts signing.
		reason = "serving certificate renewed"
	}
	if reason != "" {
		leaf, err := newLeaf(st.ca, now, o.LeafLifetime, s.dns, o.IPAddresses)
		if err != nil {
			return nil, err
		}
		st.leaf = leaf
		changes = append(changes, reason)
	}

	// The bundle: the signing CA, its successor, and earlier CAs until they expire (and with
	// them every certificate they signed).
	bundle := []*x509.Certificate{st.ca.cert}
	if st.next != nil {
		bundle = append(bundle, st.next.cert)
	}
	for _, c := range st.bundle {
		if c.IsCA && now.Before(c.NotAfter) {
			bundle = append(bundle, c)
		}
	}
	st.bundle = bundle
	if after := encodeBundle(bundle); !bytes.Equal(before, after) {
		changes = append(changes, "CA bundle is now "+describe(mustParse(after)))
	}
	return changes, nil
}

// due is the earliest future time at which st needs a change. Steps already due but waiting
// (a capped leaf, a successor CA not yet in caBundle) are left to the regular sync.
func (s *SelfManaged) due(st *state, now time.Time) time.Time {
	var t time.Time
	consider := func(u time.Time) {
		if u.After(now) && (t.IsZero() || u.Before(t)) {
			t = u
		}
	}
	consider(s.leafRenewAt(st.leaf.cert))
	consider(st.leaf.cert.NotAfter)
	if st.next == nil {
		consider(s.caRotateAt(st.ca.cert))
	} else {
		consider(s.caSwitchAt(st.ca.cert))
		consider(st.next.cert.NotAfter)
	}
	for _, c := range st.bundle {
		consider(c.NotAfter)
	}
	return t
}
