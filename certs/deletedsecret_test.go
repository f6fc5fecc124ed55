package certs

import (
	"crypto/x509"
	"fmt"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// storedBundle is the caBundle of the first webhook as stored now. Unlike fakeAPI.bundle it
// does not stop the test, so a write hook (which runs under the fake's lock) can call it.
func (f *fakeAPI) storedBundle() ([]byte, error) {
	o, err := f.Tracker().Get(mwcGVR, "", testWebhook)
	if err != nil {
		return nil, err
	}
	return o.(*admissionregistrationv1.MutatingWebhookConfiguration).Webhooks[0].ClientConfig.CABundle, nil
}

// trustChecker records, at every point it is called, whether each replica's served
// certificate verifies against the caBundle the API server has at that moment.
type trustChecker struct {
	t        *testing.T
	api      *fakeAPI
	clk      *fakeClock
	replicas map[string]*SelfManaged

	mu       sync.Mutex
	checks   int
	failures []string
}

func (c *trustChecker) check(step string) {
	bundle, err := c.api.storedBundle()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checks++
	if err != nil {
		c.failures = append(c.failures, fmt.Sprintf("%s: %v", step, err))
		return
	}
	for name, r := range c.replicas {
		cur := r.cur.Load()
		if cur == nil || cur.Leaf == nil {
			c.failures = append(c.failures, fmt.Sprintf("%s: replica %s serves nothing", step, name))
			continue
		}
		if err := verify(cur.Leaf, bundle, c.clk.Now(), testDNS); err != nil {
			c.failures = append(c.failures, fmt.Sprintf("%s: replica %s serves a certificate the API server rejects: %v (caBundle %s)",
				step, name, err, describe(mustParse(bundle))))
		}
	}
}

func (c *trustChecker) report() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.checks == 0 {
		c.t.Fatal("nothing was checked")
	}
	for i, f := range c.failures {
		if i == 5 {
			c.t.Errorf("... and %d more", len(c.failures)-i)
			break
		}
		c.t.Error(f)
	}
}

// TestDeletedSecretKeepsServedCertificatesTrusted: two replicas share the Secret; it is
// deleted (or garbled); one replica regenerates a CA while the other still serves the old CA's certificate
// until its next sync. Before every write to the API and after every pass, whatever either
// replica serves must verify against the caBundle the API server has then (no failed
// admission), and in the end both serve the new CA's certificate.
func TestDeletedSecretKeepsServedCertificatesTrusted(t *testing.T) {
	for _, tc := range []struct {
		name string
		// bEvery: the second replica syncs every bEvery minutes (the first every minute).
		bEvery int
		// expiredInBundle: the live caBundle also holds an expired CA, which must not be kept.
		expiredInBundle bool
		// garbled: the Secret is overwritten with garbage instead of deleted.
		garbled bool
	}{
		{"other replica syncs a minute later", 1, false, false},
		{"other replica syncs three minutes later", 3, false, false},
		{"expired CA in caBundle is dropped", 1, true, false},
		{"secret garbled instead of deleted", 1, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := newFakeAPI(t, webhookConfig())
			clk := newFakeClock()
			_, logs := testLogger(t)
			a, b := replica(t, api, clk, logs, nil), replica(t, api, clk, logs, nil)
			reconcile(t, a, b)
			oldCA := bundleCerts(t, api.bundle(t))[0]
			clk.Add(time.Minute)

			var expired *x509.Certificate
			if tc.expiredInBundle {
				kp, err := newCA(clk.Now().Add(-2*time.Hour), time.Hour)
				if err != nil {
					t.Fatal(err)
				}
				expired = kp.cert
				mwc := api.mwc(t)
				for i := range mwc.Webhooks {
					mwc.Webhooks[i].ClientConfig.CABundle = encodeBundle([]*x509.Certificate{oldCA, expired})
				}
				if _, err := api.AdmissionregistrationV1().MutatingWebhookConfigurations().Update(t.Context(), mwc, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			if tc.garbled {
				sec := api.secret(t).DeepCopy()
				for k := range sec.Data {
					sec.Data[k] = []byte("garbage")
				}
				if _, err := api.CoreV1().Secrets(testNS).Update(t.Context(), sec, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
			} else if err := api.CoreV1().Secrets(testNS).Delete(t.Context(), testSecret, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}

			c := &trustChecker{t: t, api: api, clk: clk, replicas: map[string]*SelfManaged{"a": a, "b": b}}
			api.beforeWrite = func(verb, res string) { c.check("before " + verb + " " + res) }
			for m := 0; m < 8; m++ {
				reconcile(t, a)
				c.check(fmt.Sprintf("minute %d, after a's pass", m))
				if m%tc.bEvery == 0 {
					reconcile(t, b)
					c.check(fmt.Sprintf("minute %d, after b's pass", m))
				}
				clk.Add(time.Minute)
			}
			c.report()

			newCA := bundleCerts(t, api.secret(t).Data[SecretKeyCACert])[0]
			if newCA.Equal(oldCA) {
				t.Fatal("the CA was not regenerated")
			}
			for name, r := range map[string]*SelfManaged{"a": a, "b": b} {
				if err := served(t, r).CheckSignatureFrom(newCA); err != nil {
					t.Errorf("replica %s still serves a certificate of the old CA: %v", name, err)
				}
			}
			bundle := api.bundle(t)
			if !bundleContains(bundle, oldCA) || !bundleContains(bundle, newCA) {
				t.Errorf("caBundle is %s, want the old CA (until it expires) and the new one", describe(bundleCerts(t, bundle)))
			}
			if expired != nil && bundleContains(bundle, expired) {
				t.Error("an expired CA of the live caBundle was carried over")
			}
			noKeyMaterial(t, logs.String(), api.secret(t))
		})
	}
}
