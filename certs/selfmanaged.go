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

// maxConflicts bounds how often one Reconcile re-reads after losing a race.
const maxConflicts = 8

// Reconcile is one pass: read the Secret (creating it if absent), renew or rotate what is due
// and write it back (re-reading on conflict), serve its certificate, and set caBundle if it
// differs. The background loop calls it when something is due and at least every SyncInterval.
func (s *SelfManaged) Reconcile(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := s.trusted
	var st *state
	for attempt := 0; ; attempt++ {
		if attempt == maxConflicts {
			return fmt.Errorf("secret %s/%s kept changing under us (%d conflicts in a row)", s.opts.Namespace, s.opts.SecretName, maxConflicts)
		}
		now := s.opts.Now()
		sec, err := s.client.GetSecret(ctx, s.opts.Namespace, s.opts.SecretName)
		if apierrors.IsNotFound(err) {
			// Deleted (or never made): replicas may still serve certificates of the CAs in
			// caBundle until their next sync, so those stay trusted next to the new CA.
			live, err := s.liveCAs(ctx, now)
			if err != nil {
				return err
			}
			if st, err = s.fresh(now, live); err != nil {
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
		if st.ca == nil && st.next == nil {
			// A CA is about to be made from scratch: as for a deleted Secret.
			live, err := s.liveCAs(ctx, now)
			if err != nil {
				return err
			}
			st.bundle = append(st.bundle, live...)
		}
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
	now := s.opts.Now()
	bundle := encodeBundle(st.bundle)
	waiting := s.serve(st, seen, bundle, now)
	s.next = s.due(st, now)
	if c := s.cur.Load(); waiting && (s.next.IsZero() || c.Leaf.NotAfter.Before(s.next)) {
		// The switch waits for the regular sync, but not past the served certificate's expiry.
		s.next = c.Leaf.NotAfter
	}
	return s.publish(ctx, bundle)
}

// reconcileBounded is Reconcile with a deadline, so a hung API call cannot stall rotation.
func (s *SelfManaged) reconcileBounded(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return s.Reconcile(ctx)
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
