// RBAC needed by the self-managed mode (SelfManaged), and nothing more. It only ever calls
// get/create/update on its one Secret and get/patch on its one MutatingWebhookConfiguration;
// it never lists or watches (other replicas' changes are picked up by polling with get).
// With the defaults (namespace vault-injector, --cert-secret-name=vault-injector-tls,
// --webhook-config-name=vault-injector):
//
//	# Role in the webhook's namespace
//	- apiGroups: [""]
//	  resources: ["secrets"]
//	  resourceNames: ["vault-injector-tls"]
//	  verbs: ["get", "update"]
//	# create cannot be restricted by resourceNames (a create request carries no name the
//	# authorizer sees); being in a namespaced Role limits it to the webhook's namespace.
//	- apiGroups: [""]
//	  resources: ["secrets"]
//	  verbs: ["create"]
//
//	# ClusterRole (MutatingWebhookConfigurations are cluster-scoped)
//	- apiGroups: ["admissionregistration.k8s.io"]
//	  resources: ["mutatingwebhookconfigurations"]
//	  resourceNames: ["vault-injector"]
//	  verbs: ["get", "patch"]
//
// caBundle is written with a strategic merge patch (webhooks merged by name, only
// clientConfig.caBundle set) carrying the resourceVersion that was read, so it is conditional
// like an update (409 Conflict if the object changed) but never drops fields this binary's
// client library does not know. "update" on the MutatingWebhookConfiguration is not used.

package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Keys of the Secret that SelfManaged keeps. It has type kubernetes.io/tls: tls.crt/tls.key are
// the serving certificate and key; ca.crt/ca.key the CA that signs it; next-ca.crt/next-ca.key
// the successor CA while a CA rotation is under way; ca-bundle.crt every CA the API server
// must trust (what caBundle is set to).
const (
	SecretKeyCert       = corev1.TLSCertKey       // tls.crt
	SecretKeyKey        = corev1.TLSPrivateKeyKey // tls.key
	SecretKeyCACert     = "ca.crt"
	SecretKeyCAKey      = "ca.key"
	SecretKeyNextCACert = "next-ca.crt"
	SecretKeyNextCAKey  = "next-ca.key"
	SecretKeyCABundle   = "ca-bundle.crt"
)

// FieldManager names our writes in managedFields.
const FieldManager = "vault-injector"

// Defaults of SelfManagedOptions.
const (
	DefaultLeafLifetime  = 365 * 24 * time.Hour
	DefaultCALifetime    = 5 * 365 * 24 * time.Hour
	DefaultSyncInterval  = time.Minute
	DefaultStartTimeout  = time.Minute
	DefaultClusterDomain = "cluster.local"
	// MinLeafLifetime: certificate times have a one-second resolution.
	MinLeafLifetime = 3 * time.Second
)

// SelfManagedOptions configure NewSelfManaged. Zero values take the defaults above.
//
// Timeline. A serving certificate is renewed (by the same CA, so caBundle does not change)
// once two thirds of LeafLifetime have passed, i.e. LeafLifetime/3 before it expires. A CA
// lives CALifetime; CALifetime/3 before it expires a successor CA is generated and published
// in caBundle next to it; CALifetime/6 before it expires, and only once this replica has seen
// the successor in caBundle, the successor starts signing and a new serving certificate is
// issued; the old CA leaves caBundle when it expires, which is also when the last certificate
// it signed expires (serving certificates never outlive their CA). So the API server trusts
// every certificate before any replica serves it, and until none can serve it any more.
type SelfManagedOptions struct {
	// Namespace of the Secret and of the webhook's Service.
	Namespace string
	// ServiceName is the webhook's Service: the serving certificate is for <svc>, <svc>.<ns>,
	// <svc>.<ns>.svc and <svc>.<ns>.svc.<ClusterDomain>.
	ServiceName string
	// SecretName is the Secret holding the CAs and serving certificate, shared by replicas.
	SecretName string
	// WebhookConfigName is our MutatingWebhookConfiguration: every webhook in it gets the CA
	// bundle as clientConfig.caBundle. Empty: caBundle is left alone (someone else sets it).
	WebhookConfigName string
	// ClusterDomain defaults to cluster.local.
	ClusterDomain string
	// ExtraDNSNames and IPAddresses are added to the serving certificate (for example
	// 127.0.0.1 when the webhook is registered by URL in tests).
	ExtraDNSNames []string
	IPAddresses   []net.IP

	LeafLifetime time.Duration
	CALifetime   time.Duration
	// SyncInterval is how often each replica re-reads the Secret and caBundle (±10%), to pick
	// up what another replica or a person changed; renewals due sooner are handled on time.
	SyncInterval time.Duration
	// StartTimeout bounds how long NewSelfManaged retries when the API server cannot be reached.
	StartTimeout time.Duration
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

// DNSNames are the DNS names the serving certificate carries.
func (o *SelfManagedOptions) DNSNames() []string {
	svc, ns := o.ServiceName, o.Namespace
	domain := strings.Trim(o.ClusterDomain, ".")
	if domain == "" {
		domain = DefaultClusterDomain
	}
	names := []string{svc + "." + ns + ".svc", svc, svc + "." + ns, svc + "." + ns + ".svc." + domain}
	for _, n := range o.ExtraDNSNames {
		if n = strings.TrimSpace(n); n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}

// withDefaults fills zero values and validates.
func (o *SelfManagedOptions) withDefaults() (SelfManagedOptions, error) {
	c := *o
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.LeafLifetime, DefaultLeafLifetime)
	def(&c.CALifetime, DefaultCALifetime)
	def(&c.SyncInterval, DefaultSyncInterval)
	def(&c.StartTimeout, DefaultStartTimeout)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.ClusterDomain = strings.Trim(c.ClusterDomain, "."); c.ClusterDomain == "" {
		c.ClusterDomain = DefaultClusterDomain
	}
	switch {
	case c.Namespace == "":
		return c, errors.New("self-managed certificate: namespace is empty")
	case c.ServiceName == "":
		return c, errors.New("self-managed certificate: service name is empty")
	case c.SecretName == "":
		return c, errors.New("self-managed certificate: secret name is empty")
	case c.LeafLifetime < MinLeafLifetime:
		return c, fmt.Errorf("self-managed certificate: leaf lifetime %s is shorter than %s", c.LeafLifetime, MinLeafLifetime)
	case c.CALifetime < 2*c.LeafLifetime:
		return c, fmt.Errorf("self-managed certificate: CA lifetime %s must be at least twice the leaf lifetime %s", c.CALifetime, c.LeafLifetime)
	case c.SyncInterval < 0 || c.StartTimeout < 0:
		return c, errors.New("self-managed certificate: negative sync interval or start timeout")
	}
	return c, nil
}

// SelfManaged generates and rotates the webhook's CA and serving certificate. They live in a
// Secret that every replica reads and writes with optimistic concurrency (create-if-absent,
// update with resourceVersion, re-read on conflict), so replicas converge on one certificate
// without leader election; each replica sets caBundle on our MutatingWebhookConfiguration when,
// and only when, it differs from the Secret's bundle, so N replicas make one write.
type SelfManaged struct {
	client API
	opts   SelfManagedOptions
	log    *slog.Logger
	dns    []string

	cur atomic.Pointer[tls.Certificate]

	mu sync.Mutex // serializes Reconcile and guards the fields below
	// trusted is the caBundle last seen in (or written to) every webhook of our
	// configuration: a successor CA starts signing only once it is in there.
	trusted []byte
	// next is when the state next needs attention (renewal, CA rotation steps, CA expiry).
	next time.Time
	// missingConfig avoids repeating the "configuration not found" warning on every sync.
	missingConfig bool

	secretWrites atomic.Int64
	bundleWrites atomic.Int64
}

// NewSelfManaged loads (creating or repairing it if needed) the certificate, sets caBundle,
// and keeps both current until ctx ends. It retries for up to StartTimeout when the API server
// cannot be reached, and fails at once when it refuses (RBAC).
func NewSelfManaged(ctx context.Context, client API, opts SelfManagedOptions, log *slog.Logger) (*SelfManaged, error) {
	s, err := newSelfManaged(client, opts, log)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(s.opts.StartTimeout)
	backoff := 250 * time.Millisecond
	for {
		err := s.reconcileBounded(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil || !time.Now().Before(deadline) || apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
			return nil, fmt.Errorf("self-managed certificate (secret %s/%s): %w", s.opts.Namespace, s.opts.SecretName, err)
		}
		s.log.Warn("self-managed certificate not ready yet; retrying", "error", err.Error(), "retry_in", backoff.String())
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("self-managed certificate: %w", ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
	go s.run(ctx)
	return s, nil
}

func newSelfManaged(client API, opts SelfManagedOptions, log *slog.Logger) (*SelfManaged, error) {
	if client == nil {
		return nil, errors.New("self-managed certificate: no Kubernetes client")
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &SelfManaged{
		client: client,
		opts:   o,
		log:    log.With("component", "certs", "secret", o.Namespace+"/"+o.SecretName),
		dns:    o.DNSNames(),
	}, nil
}

// GetCertificate implements tls.Config.GetCertificate.
func (s *SelfManaged) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := s.cur.Load()
	if c == nil {
		return nil, errors.New("no serving certificate yet")
	}
	return c, nil
}

// CABundle returns the PEM bundle this replica last saw in (or wrote to) caBundle.
func (s *SelfManaged) CABundle() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.trusted)
}

// SecretWrites is how many times this replica created or updated the Secret.
func (s *SelfManaged) SecretWrites() int64 { return s.secretWrites.Load() }

// BundleWrites is how many times this replica patched caBundle.
func (s *SelfManaged) BundleWrites() int64 { return s.bundleWrites.Load() }

// state is the Secret's content, parsed.
type state struct {
	ca, next, leaf *keyPair
	bundle         []*x509.Certificate
}

// maxConflicts bounds how often one Reconcile re-reads after losing a race.
const maxConflicts = 8

// Reconcile is one pass: read the Secret (creating it if absent), renew or rotate what is due
// and write it back (re-reading on conflict), serve its certificate, and set caBundle if it
// differs. The background loop calls it when something is due and at least every SyncInterval.
func (s *SelfManaged) Reconcile(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var st *state
	for attempt := 0; ; attempt++ {
		if attempt == maxConflicts {
			return fmt.Errorf("secret %s/%s kept changing under us (%d conflicts in a row)", s.opts.Namespace, s.opts.SecretName, maxConflicts)
		}
		now := s.opts.Now()
		sec, err := s.client.GetSecret(ctx, s.opts.Namespace, s.opts.SecretName)
		if apierrors.IsNotFound(err) {
			if st, err = s.fresh(now); err != nil {
				return err
			}
			sec = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: s.opts.SecretName, Namespace: s.opts.Namespace}, Type: corev1.SecretTypeTLS}
			s.store(sec, st)
			if err := s.client.CreateSecret(ctx, sec); err != nil {
				if apierrors.IsAlreadyExists(err) {
					s.log.Debug("another replica created the secret first; using theirs")
					continue
				}
				return fmt.Errorf("create secret %s/%s: %w", s.opts.Namespace, s.opts.SecretName, err)
			}
			s.secretWrites.Add(1)
			s.log.Info("created CA and serving certificate", "ca", describe([]*x509.Certificate{st.ca.cert}),
				"ca_not_after", ts(st.ca.cert.NotAfter), "not_after", ts(st.leaf.cert.NotAfter), "dns_names", strings.Join(s.dns, ","))
			break
		}
		if err != nil {
			return fmt.Errorf("get secret %s/%s: %w", s.opts.Namespace, s.opts.SecretName, err)
		}
		st = s.parse(sec)
		changes, err := s.advance(st, now)
		if err != nil {
			return err
		}
		if len(changes) == 0 {
			break
		}
		sec = sec.DeepCopy()
		s.store(sec, st)
		if err := s.client.UpdateSecret(ctx, sec); err != nil {
			if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
				s.log.Debug("secret changed while we updated it; re-reading", "error", err.Error())
				continue
			}
			return fmt.Errorf("update secret %s/%s: %w", s.opts.Namespace, s.opts.SecretName, err)
		}
		s.secretWrites.Add(1)
		s.log.Info("updated CA / serving certificate", "changes", strings.Join(changes, "; "),
			"ca", describe([]*x509.Certificate{st.ca.cert}), "not_after", ts(st.leaf.cert.NotAfter))
		break
	}
	s.serve(st)
	s.next = s.due(st, s.opts.Now())
	return s.publish(ctx, encodeBundle(st.bundle))
}

// reconcileBounded is Reconcile with a deadline, so a hung API call cannot stall rotation.
func (s *SelfManaged) reconcileBounded(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return s.Reconcile(ctx)
}

// fresh is a new CA and serving certificate.
func (s *SelfManaged) fresh(now time.Time) (*state, error) {
	ca, err := newCA(now, s.opts.CALifetime)
	if err != nil {
		return nil, err
	}
	leaf, err := newLeaf(ca, now, s.opts.LeafLifetime, s.dns, s.opts.IPAddresses)
	if err != nil {
		return nil, err
	}
	return &state{ca: ca, leaf: leaf, bundle: []*x509.Certificate{ca.cert}}, nil
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

// publish sets caBundle on every webhook of our configuration whose bundle differs, with a
// strategic merge patch (webhooks merged by name) conditional on the resourceVersion read.
func (s *SelfManaged) publish(ctx context.Context, bundle []byte) error {
	if s.opts.WebhookConfigName == "" {
		s.trusted = bundle
		return nil
	}
	for attempt := 0; attempt < maxConflicts; attempt++ {
		mwc, err := s.client.GetWebhookConfig(ctx, s.opts.WebhookConfigName)
		if apierrors.IsNotFound(err) {
			// Installed a moment later, or deleted: the next sync tries again.
			if !s.missingConfig {
				s.log.Warn("MutatingWebhookConfiguration not found; caBundle will be set once it exists", "webhook_configuration", s.opts.WebhookConfigName)
			}
			s.missingConfig = true
			return nil
		}
		if err != nil {
			return fmt.Errorf("get MutatingWebhookConfiguration %s: %w", s.opts.WebhookConfigName, err)
		}
		s.missingConfig = false
		type clientConfig struct {
			CABundle []byte `json:"caBundle"`
		}
		type webhook struct {
			Name         string       `json:"name"`
			ClientConfig clientConfig `json:"clientConfig"`
		}
		var stale []webhook
		for _, wh := range mwc.Webhooks {
			if !bytes.Equal(wh.ClientConfig.CABundle, bundle) {
				stale = append(stale, webhook{Name: wh.Name, ClientConfig: clientConfig{CABundle: bundle}})
			}
		}
		if len(stale) == 0 {
			s.trusted = bundle
			return nil
		}
		patch := map[string]any{"webhooks": stale}
		if mwc.ResourceVersion != "" {
			patch["metadata"] = map[string]any{"resourceVersion": mwc.ResourceVersion}
		}
		body, err := json.Marshal(patch)
		if err != nil {
			return fmt.Errorf("encode caBundle patch: %w", err)
		}
		if err := s.client.PatchWebhookConfig(ctx, s.opts.WebhookConfigName, body); err != nil {
			if apierrors.IsConflict(err) {
				s.log.Debug("MutatingWebhookConfiguration changed while we patched it; re-reading", "error", err.Error())
				continue
			}
			return fmt.Errorf("patch caBundle of MutatingWebhookConfiguration %s: %w", s.opts.WebhookConfigName, err)
		}
		s.bundleWrites.Add(1)
		s.trusted = bundle
		s.log.Info("caBundle updated", "webhook_configuration", s.opts.WebhookConfigName, "webhooks", len(stale), "cas", describe(mustParse(bundle)))
		return nil
	}
	return fmt.Errorf("patch caBundle of MutatingWebhookConfiguration %s: it kept changing under us (%d conflicts in a row)", s.opts.WebhookConfigName, maxConflicts)
}

// run reconciles when something is due and at least every SyncInterval; after a failure it
// retries with backoff and keeps serving the last good certificate.
func (s *SelfManaged) run(ctx context.Context) {
	backoff := time.Duration(0)
	for {
		interval := s.opts.SyncInterval
		wait := interval + time.Duration((rand.Float64()*0.2-0.1)*float64(interval))
		if backoff > 0 {
			wait = min(wait, backoff)
		}
		s.mu.Lock()
		next := s.next
		s.mu.Unlock()
		if !next.IsZero() {
			// A little after the due time, so that the step is really due when we look.
			if d := next.Sub(s.opts.Now()) + 50*time.Millisecond; d < wait {
				wait = max(d, 0)
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if err := s.reconcileBounded(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			backoff = min(max(backoff*2, time.Second), interval)
			s.log.Warn("certificate reconcile failed; serving the last good certificate and retrying", "error", err.Error(), "retry_in", backoff.String())
			continue
		}
		backoff = 0
	}
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }
