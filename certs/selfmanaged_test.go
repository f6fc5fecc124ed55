package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// replica is a SelfManaged driven by the test (no background loop).
func replica(t *testing.T, api *fakeAPI, clk *fakeClock, log *logBuffer, mod func(*SelfManagedOptions)) *SelfManaged {
	t.Helper()
	o := SelfManagedOptions{
		Namespace:         testNS,
		ServiceName:       testSvc,
		SecretName:        testSecret,
		WebhookConfigName: testWebhook,
		Now:               clk.Now,
	}
	if mod != nil {
		mod(&o)
	}
	l := slog.New(slog.DiscardHandler)
	if log != nil {
		l = slogTo(log)
	}
	s, err := newSelfManaged(api, o, l)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func reconcile(t *testing.T, s ...*SelfManaged) {
	t.Helper()
	for _, r := range s {
		if err := r.Reconcile(t.Context()); err != nil {
			t.Fatalf("reconcile: %v", err)
		}
	}
}

func served(t *testing.T, s *SelfManaged) *x509.Certificate {
	t.Helper()
	c, err := s.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Leaf == nil {
		t.Fatal("served certificate has no parsed leaf")
	}
	return c.Leaf
}

// verify checks leaf the way the API server does: against caBundle, at now, for the Service name.
func verify(leaf *x509.Certificate, bundle []byte, now time.Time, name string) error {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle) {
		return errors.New("caBundle holds no certificate")
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err
}

func bundleCerts(t *testing.T, bundle []byte) []*x509.Certificate {
	t.Helper()
	cs, err := parseCerts(bundle)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// noKeyMaterial fails if the logs contain anything that looks like a private key.
func noKeyMaterial(t *testing.T, logs string, secrets ...*corev1.Secret) {
	t.Helper()
	if strings.Contains(logs, "PRIVATE KEY") {
		t.Error("logs contain a PEM private key")
	}
	for _, s := range secrets {
		for _, k := range []string{SecretKeyKey, SecretKeyCAKey, SecretKeyNextCAKey} {
			for _, line := range strings.Split(string(s.Data[k]), "\n") {
				if len(line) > 20 && !strings.HasPrefix(line, "-----") && strings.Contains(logs, line) {
					t.Errorf("logs contain a line of %s", k)
				}
			}
		}
	}
}

func TestOptionsValidation(t *testing.T) {
	base := SelfManagedOptions{Namespace: "ns", ServiceName: "svc", SecretName: "sec"}
	for _, tc := range []struct {
		name string
		mod  func(*SelfManagedOptions)
		want string
	}{
		{"defaults", func(*SelfManagedOptions) {}, ""},
		{"no namespace", func(o *SelfManagedOptions) { o.Namespace = "" }, "namespace is empty"},
		{"no service", func(o *SelfManagedOptions) { o.ServiceName = "" }, "service name is empty"},
		{"no secret", func(o *SelfManagedOptions) { o.SecretName = "" }, "secret name is empty"},
		{"leaf too short", func(o *SelfManagedOptions) { o.LeafLifetime = time.Second }, "shorter than 3s"},
		{"CA shorter than two leaves", func(o *SelfManagedOptions) { o.LeafLifetime, o.CALifetime = time.Hour, 90*time.Minute }, "at least twice the leaf lifetime"},
		{"seconds are fine", func(o *SelfManagedOptions) { o.LeafLifetime, o.CALifetime = 3*time.Second, 6*time.Second }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			tc.mod(&o)
			_, err := o.withDefaults()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
	if _, err := newSelfManaged(nil, base, nil); err == nil {
		t.Error("nil client accepted")
	}
}

func TestDNSNames(t *testing.T) {
	o := SelfManagedOptions{Namespace: "ns", ServiceName: "svc", ExtraDNSNames: []string{"svc", " extra.example ", ""}}
	got := strings.Join(o.DNSNames(), ",")
	if want := "svc.ns.svc,svc,svc.ns,svc.ns.svc.cluster.local,extra.example"; got != want {
		t.Errorf("DNSNames = %s, want %s", got, want)
	}
	o.ClusterDomain = "corp.internal."
	if got := o.DNSNames()[3]; got != "svc.ns.svc.corp.internal" {
		t.Errorf("with cluster domain: %s", got)
	}
}

func TestReplicasShareOneCertificate(t *testing.T) {
	for _, tc := range []struct {
		name       string
		concurrent bool
	}{
		{"one after the other", false},
		{"racing to create", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := newFakeAPI(t, webhookConfig())
			clk := newFakeClock()
			_, logs := testLogger(t)
			a := replica(t, api, clk, logs, nil)
			b := replica(t, api, clk, logs, nil)
			if tc.concurrent {
				// Both read "not found" before either creates.
				gate := make(chan struct{})
				var mu sync.Mutex
				n := 0
				wait := func() {
					mu.Lock()
					n++
					first := n <= 2
					if n == 2 {
						close(gate)
					}
					mu.Unlock()
					if first {
						select {
						case <-gate:
						case <-time.After(10 * time.Second):
						}
					}
				}
				for _, r := range []*SelfManaged{a, b} {
					r.client = gatedClient{api, wait}
				}
				var wg sync.WaitGroup
				errs := make(chan error, 2)
				for _, r := range []*SelfManaged{a, b} {
					wg.Add(1)
					go func() {
						defer wg.Done()
						errs <- r.Reconcile(t.Context())
					}()
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					if err != nil {
						t.Fatal(err)
					}
				}
				if got := api.tries("create", "secrets"); got != 2 {
					t.Errorf("%d create attempts, want 2 (the race did not happen)", got)
				}
			} else {
				reconcile(t, a, b)
			}
			if !served(t, a).Equal(served(t, b)) {
				t.Fatal("replicas serve different certificates")
			}
			if got := api.count("create", "secrets"); got != 1 {
				t.Errorf("secret created %d times, want 1", got)
			}
			if got := api.count("patch", "mutatingwebhookconfigurations"); got != 1 {
				t.Errorf("caBundle written %d times, want 1", got)
			}
			if got := a.BundleWrites() + b.BundleWrites(); got != 1 {
				t.Errorf("replicas count %d caBundle writes, want 1", got)
			}
			// More passes by both: nothing to write.
			for range 3 {
				reconcile(t, a, b)
			}
			if w := api.count("update", "secrets") + api.count("patch", "mutatingwebhookconfigurations"); w != 1 {
				t.Errorf("idle reconciles wrote %d times", w-1)
			}
			sec := api.secret(t)
			if sec.Type != corev1.SecretTypeTLS {
				t.Errorf("secret type %q", sec.Type)
			}
			for _, k := range []string{SecretKeyCert, SecretKeyKey, SecretKeyCACert, SecretKeyCAKey, SecretKeyCABundle} {
				if len(sec.Data[k]) == 0 {
					t.Errorf("secret lacks %s", k)
				}
			}
			bundle := api.bundle(t)
			if !bytes.Equal(bundle, sec.Data[SecretKeyCABundle]) || !bytes.Equal(bundle, a.CABundle()) {
				t.Error("caBundle differs from the secret's bundle")
			}
			for _, name := range []string{testSvc, testSvc + "." + testNS, testDNS, testDNS + ".cluster.local"} {
				if err := verify(served(t, a), bundle, clk.Now(), name); err != nil {
					t.Errorf("%s: %v", name, err)
				}
			}
			noKeyMaterial(t, logs.String(), sec)
		})
	}
}

func TestCABundleRestoredWhenReset(t *testing.T) {
	api := newFakeAPI(t, webhookConfig())
	clk := newFakeClock()
	_, logs := testLogger(t)
	a, b := replica(t, api, clk, logs, nil), replica(t, api, clk, logs, nil)
	reconcile(t, a, b)
	// A `helm upgrade` re-applies the configuration without caBundle.
	mwc := api.mwc(t)
	mwc.Webhooks[1].ClientConfig.CABundle = nil
	if _, err := api.AdmissionregistrationV1().MutatingWebhookConfigurations().Update(t.Context(), mwc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	reconcile(t, a, b)
	if got := api.count("patch", "mutatingwebhookconfigurations"); got != 2 {
		t.Errorf("caBundle written %d times, want 2 (initial + restore)", got)
	}
	if api.bundle(t) == nil {
		t.Fatal("caBundle not restored")
	}
}

func TestLeafRenewal(t *testing.T) {
	api := newFakeAPI(t, webhookConfig())
	clk := newFakeClock()
	_, logs := testLogger(t)
	short := func(o *SelfManagedOptions) { o.LeafLifetime, o.CALifetime = 30*time.Second, 10*time.Minute }
	a, b := replica(t, api, clk, logs, short), replica(t, api, clk, logs, short)
	reconcile(t, a, b)
	first := served(t, a)
	if d := first.NotAfter.Sub(clk.Now()); d != 30*time.Second {
		t.Fatalf("leaf lives %s, want 30s", d)
	}
	clk.Add(19 * time.Second)
	reconcile(t, a, b)
	if !served(t, a).Equal(first) || api.count("update", "secrets") != 0 {
		t.Fatal("renewed before two thirds of the lifetime")
	}
	clk.Add(2 * time.Second) // 21s: past 20s
	reconcile(t, a)
	renewed := served(t, a)
	if renewed.Equal(first) {
		t.Fatal("not renewed after two thirds of the lifetime")
	}
	if !bytes.Equal(renewed.RawIssuer, first.RawIssuer) || !served(t, b).Equal(first) {
		t.Fatal("renewal changed the CA, or the other replica switched without reading the secret")
	}
	// The replica that has not looked yet still serves a certificate the API server accepts.
	bundle := api.bundle(t)
	for _, c := range []*x509.Certificate{first, renewed} {
		if err := verify(c, bundle, clk.Now(), testDNS); err != nil {
			t.Fatal(err)
		}
	}
	reconcile(t, b)
	if !served(t, b).Equal(renewed) {
		t.Fatal("other replica did not pick up the renewed certificate")
	}
	if got := api.count("update", "secrets"); got != 1 {
		t.Errorf("secret updated %d times, want 1", got)
	}
	if got := api.count("patch", "mutatingwebhookconfigurations"); got != 1 {
		t.Errorf("caBundle written %d times, want 1 (a renewal by the same CA changes nothing there)", got)
	}
	if want := clk.Now().Add(-21 * time.Second).Add(40 * time.Second).Add(time.Second); a.next.After(want) {
		t.Errorf("next due %s, want by %s", a.next, want)
	}
}

// TestLeafRenewalRealClock runs the background loop with a 3-second certificate: it is renewed
// without anyone calling Reconcile, and a second replica follows.
func TestLeafRenewalRealClock(t *testing.T) {
	api := newFakeAPI(t, webhookConfig())
	_, logs := testLogger(t)
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	o := SelfManagedOptions{Namespace: testNS, ServiceName: testSvc, SecretName: testSecret, WebhookConfigName: testWebhook,
		LeafLifetime: 3 * time.Second, CALifetime: time.Hour, SyncInterval: time.Hour}
	a, err := NewSelfManaged(ctx, api, o, slogTo(logs))
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewSelfManaged(ctx, api, o, slogTo(logs))
	if err != nil {
		t.Fatal(err)
	}
	first := served(t, a)
	deadline := time.Now().Add(5 * time.Second)
	for served(t, a).Equal(first) || !served(t, b).Equal(served(t, a)) {
		if time.Now().After(deadline) {
			t.Fatal("certificate not renewed by both replicas within 5s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := verify(served(t, b), api.bundle(t), time.Now(), testDNS); err != nil {
		t.Fatal(err)
	}
}

// TestCARotation walks two replicas through two CA rotations, minute by minute; one replica
// looks only every third minute. At every step, whatever either serves must verify against
// the caBundle the API server has, and the bundle must go through the documented phases.
func TestCARotation(t *testing.T) {
	api := newFakeAPI(t, webhookConfig())
	clk := newFakeClock()
	start := clk.Now()
	_, logs := testLogger(t)
	opts := func(o *SelfManagedOptions) { o.LeafLifetime, o.CALifetime = 10*time.Minute, 60*time.Minute }
	a, b := replica(t, api, clk, logs, opts), replica(t, api, clk, logs, opts)
	reconcile(t, a, b)

	type phase string
	var phases []phase
	var bundleChanges int
	var prevBundle []byte
	seenServed := map[string]*x509.Certificate{} // every leaf served, by serial
	for m := 0; m <= 125; m++ {
		reconcile(t, a)
		if m%3 == 0 {
			reconcile(t, b)
		}
		now := clk.Now()
		bundle := api.bundle(t)
		if !bytes.Equal(bundle, prevBundle) {
			bundleChanges++
			prevBundle = bundle
		}
		cas := bundleCerts(t, bundle)
		for name, r := range map[string]*SelfManaged{"a": a, "b": b} {
			leaf := served(t, r)
			seenServed[leaf.SerialNumber.String()] = leaf
			if err := verify(leaf, bundle, now, testDNS); err != nil {
				t.Fatalf("minute %d: replica %s serves a certificate the API server rejects: %v (bundle %s)", m, name, err, describe(cas))
			}
		}
		// Any certificate ever served that has not expired is still trusted (a replica
		// that has not looked for a while may still serve it).
		for _, leaf := range seenServed {
			if now.Before(leaf.NotAfter) {
				if err := verify(leaf, bundle, now, testDNS); err != nil {
					t.Fatalf("minute %d: an unexpired certificate served earlier is no longer trusted: %v", m, err)
				}
			}
		}
		var p phase
		switch leaf := served(t, a); {
		case len(cas) == 1:
			p = "one CA"
		case len(cas) == 2 && leaf.CheckSignatureFrom(cas[0]) == nil:
			p = "successor published, old CA signs"
		case len(cas) == 2 && leaf.CheckSignatureFrom(cas[1]) == nil:
			p = "successor signs, old CA still trusted"
		default:
			t.Fatalf("minute %d: unexpected bundle of %d CAs", m, len(cas))
		}
		if len(phases) == 0 || phases[len(phases)-1] != p {
			phases = append(phases, p)
			t.Logf("minute %3d: %s (%s)", m, p, describe(cas))
		}
		clk.Add(time.Minute)
	}
	want := []phase{"one CA", "successor published, old CA signs", "successor signs, old CA still trusted",
		"one CA", "successor published, old CA signs", "successor signs, old CA still trusted",
		"one CA", "successor published, old CA signs"}
	if strings.Join(phasesString(phases), " / ") != strings.Join(phasesString(want), " / ") {
		t.Errorf("phases:\n%s\nwant:\n%s", strings.Join(phasesString(phases), "\n"), strings.Join(phasesString(want), "\n"))
	}
	if got := api.count("patch", "mutatingwebhookconfigurations"); got != bundleChanges {
		t.Errorf("caBundle written %d times for %d changes: replicas wrote the same bytes twice", got, bundleChanges)
	}
	if clk.Now().Sub(start) < 125*time.Minute {
		t.Fatal("clock did not advance")
	}
	noKeyMaterial(t, logs.String(), api.secret(t))
}

func phasesString[T ~string](ps []T) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = string(p)
	}
	return out
}

// TestSuccessorWaitsForCABundle: the successor CA does not sign until it has been seen in
// caBundle (here the configuration is installed late).
func TestSuccessorWaitsForCABundle(t *testing.T) {
	api := newFakeAPI(t)
	clk := newFakeClock()
	_, logs := testLogger(t)
	opts := func(o *SelfManagedOptions) { o.LeafLifetime, o.CALifetime = 10*time.Minute, 60*time.Minute }
	a := replica(t, api, clk, logs, opts)
	reconcile(t, a)
	ca := bundleCerts(t, api.secret(t).Data[SecretKeyCACert])[0]
	clk.Add(55 * time.Minute) // past the hand-over time, no configuration to publish in
	reconcile(t, a)
	reconcile(t, a)
	if got := bundleCerts(t, api.secret(t).Data[SecretKeyCACert])[0]; !got.Equal(ca) {
		t.Fatal("successor CA signs although caBundle never trusted it")
	}
	if !strings.Contains(logs.String(), "MutatingWebhookConfiguration not found") || strings.Count(logs.String(), "MutatingWebhookConfiguration not found") != 1 {
		t.Error("missing configuration not reported exactly once")
	}
	if _, err := api.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(t.Context(), webhookConfig(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	reconcile(t, a) // publishes both CAs
	if len(bundleCerts(t, api.bundle(t))) != 2 {
		t.Fatal("successor not published")
	}
	reconcile(t, a) // now trusted: hands over
	if got := served(t, a); got.CheckSignatureFrom(ca) == nil {
		t.Fatal("successor CA does not sign after being published")
	}
	if err := verify(served(t, a), api.bundle(t), clk.Now(), testDNS); err != nil {
		t.Fatal(err)
	}
}

func TestCAExpiredWhileDown(t *testing.T) {
	api := newFakeAPI(t, webhookConfig())
	clk := newFakeClock()
	_, logs := testLogger(t)
	opts := func(o *SelfManagedOptions) { o.LeafLifetime, o.CALifetime = 10*time.Minute, 60*time.Minute }
	reconcile(t, replica(t, api, clk, logs, opts))
	clk.Add(3 * time.Hour)
	a := replica(t, api, clk, logs, opts) // a restarted replica
	reconcile(t, a)
	if err := verify(served(t, a), api.bundle(t), clk.Now(), testDNS); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "the CA expired before it was rotated") {
		t.Error("expired CA not reported")
	}
	if n := len(bundleCerts(t, api.bundle(t))); n != 1 {
		t.Errorf("bundle holds %d CAs, want only the new one", n)
	}
}

func TestConflictsAreRetried(t *testing.T) {
	for _, tc := range []struct {
		name      string
		verb, res string
		conflicts int
		wantErr   string
	}{
		{"secret update conflicts once", "update", "secrets", 1, ""},
		{"secret update conflicts thrice", "update", "secrets", 3, ""},
		{"caBundle patch conflicts once", "patch", "mutatingwebhookconfigurations", 1, ""},
		{"secret keeps changing", "update", "secrets", 1000, "conflicts in a row"},
		{"configuration keeps changing", "patch", "mutatingwebhookconfigurations", 1000, "conflicts in a row"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := newFakeAPI(t, webhookConfig())
			clk := newFakeClock()
			_, logs := testLogger(t)
			opts := func(o *SelfManagedOptions) { o.LeafLifetime, o.CALifetime = 30*time.Second, 10*time.Minute }
			a := replica(t, api, clk, logs, opts)
			reconcile(t, a)
			// Make both an update (renewal) and a patch (caBundle reset) necessary.
			clk.Add(25 * time.Second)
			mwc := api.mwc(t)
			mwc.Webhooks[0].ClientConfig.CABundle = []byte("stale")
			if _, err := api.AdmissionregistrationV1().MutatingWebhookConfigurations().Update(t.Context(), mwc, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			left := tc.conflicts
			gvr := secretsGVR
			ns, name := testNS, testSecret
			if tc.res == "mutatingwebhookconfigurations" {
				gvr, ns, name = mwcGVR, "", testWebhook
			}
			api.beforeWrite = func(verb, res string) {
				if verb == tc.verb && res == tc.res && left > 0 {
					left--
					api.touch(t, gvr, ns, name) // another writer got there first
				}
			}
			updates, patches := api.count("update", "secrets"), api.count("patch", "mutatingwebhookconfigurations")
			err := a.Reconcile(t.Context())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := api.count("update", "secrets") - updates; got != 1 {
				t.Errorf("%d secret updates, want 1", got)
			}
			if got := api.count("patch", "mutatingwebhookconfigurations") - patches; got != 1 {
				t.Errorf("%d caBundle patches, want 1", got)
			}
			if got := api.tries(tc.verb, tc.res); got < tc.conflicts+1 {
				t.Errorf("%d attempts, want at least %d", got, tc.conflicts+1)
			}
			if sec := api.secret(t); !bytes.Equal(sec.Data[SecretKeyCert], pemOf(served(t, a))) {
				t.Error("served certificate is not the stored one")
			}
			if err := verify(served(t, a), api.bundle(t), clk.Now(), testDNS); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func pemOf(c *x509.Certificate) []byte {
	return encodeBundle([]*x509.Certificate{c})
}

func TestGarbageInSecretIsReplaced(t *testing.T) {
	// A valid state to damage.
	good := func(t *testing.T) *corev1.Secret {
		t.Helper()
		api := newFakeAPI(t)
		reconcile(t, replica(t, api, newFakeClock(), nil, nil))
		return api.secret(t)
	}
	for _, tc := range []struct {
		name    string
		damage  func(d map[string][]byte)
		wantLog string // "" : no warning expected
		keepCA  bool
	}{
		{"serving certificate not PEM", func(d map[string][]byte) { d[SecretKeyCert] = []byte("garbage") }, "unusable serving certificate in the secret", true},
		{"serving key truncated", func(d map[string][]byte) { d[SecretKeyKey] = d[SecretKeyKey][:40] }, "unusable serving certificate in the secret", true},
		{"CA key garbage", func(d map[string][]byte) {
			d[SecretKeyCAKey] = []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
		}, "unusable CA in the secret", false},
		{"CA is a leaf", func(d map[string][]byte) { d[SecretKeyCACert], d[SecretKeyCAKey] = d[SecretKeyCert], d[SecretKeyKey] }, "certificate is not a CA", false},
		{"bundle garbage", func(d map[string][]byte) {
			d[SecretKeyCABundle] = []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
		}, "unusable CA bundle in the secret", true},
		{"successor garbage", func(d map[string][]byte) { d[SecretKeyNextCACert] = []byte("nope") }, "unusable successor CA in the secret", true},
		{"everything garbage", func(d map[string][]byte) {
			for k := range d {
				d[k] = []byte("\x00\x01garbage")
			}
		}, "unusable CA in the secret", false},
		{"empty", func(d map[string][]byte) { clear(d) }, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sec := good(t)
			oldCA := sec.Data[SecretKeyCACert]
			sec.Data["unrelated"] = []byte("kept")
			tc.damage(sec.Data)
			sec.ResourceVersion = ""
			api := newFakeAPI(t, []runtime.Object{sec, webhookConfig()}...)
			clk := newFakeClock()
			_, logs := testLogger(t)
			a := replica(t, api, clk, logs, nil)
			if err := a.Reconcile(t.Context()); err != nil {
				t.Fatalf("reconcile: %v", err)
			}
			if tc.wantLog != "" && !strings.Contains(logs.String(), tc.wantLog) {
				t.Errorf("no log line %q in:\n%s", tc.wantLog, logs.String())
			}
			if err := verify(served(t, a), api.bundle(t), clk.Now(), testDNS); err != nil {
				t.Fatal(err)
			}
			fixed := api.secret(t)
			if _, err := parseKeyPair(fixed.Data[SecretKeyCert], fixed.Data[SecretKeyKey]); err != nil {
				t.Errorf("stored serving certificate still unusable: %v", err)
			}
			if got := bytes.Equal(fixed.Data[SecretKeyCACert], oldCA); got != tc.keepCA {
				t.Errorf("CA kept = %v, want %v", got, tc.keepCA)
			}
			if tc.name != "everything garbage" && tc.name != "empty" && string(fixed.Data["unrelated"]) != "kept" {
				t.Error("a key that is not ours was dropped")
			}
			// A second replica reading the repaired secret writes nothing.
			updates := api.count("update", "secrets")
			reconcile(t, replica(t, api, clk, logs, nil))
			if api.count("update", "secrets") != updates {
				t.Error("repaired secret rewritten again")
			}
			noKeyMaterial(t, logs.String(), fixed, sec)
		})
	}
}

// TestServesTLS: a TLS client trusting caBundle connects to a server using GetCertificate,
// by Service name and by the extra IP address.
func TestServesTLS(t *testing.T) {
	api := newFakeAPI(t, webhookConfig())
	clk := &fakeClock{t: time.Now()}
	a := replica(t, api, clk, nil, func(o *SelfManagedOptions) { o.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")} })
	reconcile(t, a)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: a.GetCertificate, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.(*tls.Conn).Handshake()
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(api.bundle(t))
	for _, name := range []string{testDNS, "127.0.0.1"} {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: name, MinVersion: tls.VersionTLS12})
		if err != nil {
			t.Fatalf("handshake as %s: %v", name, err)
		}
		c.Close()
	}
}

func TestGetCertificateBeforeFirstReconcile(t *testing.T) {
	a := replica(t, newFakeAPI(t), newFakeClock(), nil, nil)
	if c, err := a.GetCertificate(&tls.ClientHelloInfo{}); err == nil || c != nil {
		t.Fatal("a certificate before any was loaded")
	}
}
