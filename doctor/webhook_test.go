package doctor

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func mwc(name string, hooks ...string) *admissionregistrationv1.MutatingWebhookConfiguration {
	m := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, h := range hooks {
		m.Webhooks = append(m.Webhooks, admissionregistrationv1.MutatingWebhook{Name: h, ClientConfig: admissionregistrationv1.WebhookClientConfig{
			Service: &admissionregistrationv1.ServiceReference{Namespace: "vault-injector", Name: "vault-injector"},
		}})
	}
	return m
}

func TestCheckWebhookConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		objects []runtime.Object
		flag    string
		want    Status
		wantMsg string
	}{
		{"found by webhook name", []runtime.Object{mwc("other", "x.example.com"), mwc("vi", WebhookName)}, "", Pass, "MutatingWebhookConfiguration vi holds"},
		{"none", []runtime.Object{mwc("other", "x.example.com")}, "", Fail, "no MutatingWebhookConfiguration holds"},
		{"named and missing", nil, "vi", Fail, `"vi" does not exist`},
		{"named without our webhook", []runtime.Object{mwc("vi", "x.example.com")}, "vi", Fail, "has no webhook named"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref, f := checkWebhookConfig(context.Background(), kubeOf(tc.objects...), tc.flag)
			if f.Status != tc.want || !strings.Contains(f.Message, tc.wantMsg) || (ref != nil) != (tc.want == Pass) {
				t.Errorf("got %+v (ref %v)", f, ref)
			}
			if f.Status == Fail && f.Fix == "" {
				t.Error("a failure without a fix")
			}
		})
	}
}

func webhookPod(name string, ready bool) *corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "vault-injector", Labels: map[string]string{"app": "vi"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "webhook", Ports: []corev1.ContainerPort{{Name: "https", ContainerPort: 8443}}}}},
		Status:     corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}},
	}
}

var webhookService = &corev1.Service{
	ObjectMeta: metav1.ObjectMeta{Name: "vault-injector", Namespace: "vault-injector"},
	Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "vi"}, Ports: []corev1.ServicePort{{Port: 443, TargetPort: intstr.FromString("https")}}},
}

func TestCheckWebhookPods(t *testing.T) {
	for _, tc := range []struct {
		name    string
		objects []runtime.Object
		want    Status
		wantMsg string
	}{
		{"ready", []runtime.Object{webhookService, webhookPod("a", true), webhookPod("b", true)}, Pass, "2 webhook pod(s) ready"},
		{"one not ready", []runtime.Object{webhookService, webhookPod("a", true), webhookPod("b", false)}, Fail, "not ready: b"},
		{"scaled to zero", []runtime.Object{webhookService}, Fail, "no pod behind Service vault-injector/vault-injector: with failurePolicy Fail every selected pod is refused"},
		{"no service", nil, Fail, "the webhook's Service vault-injector/vault-injector"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mwc("vi", WebhookName)
			ref := &webhookRef{Config: "vi", Hook: &m.Webhooks[0]}
			_, f := checkWebhookPods(context.Background(), kubeOf(tc.objects...), ref)
			if f.Status != tc.want || !strings.Contains(f.Message, tc.wantMsg) {
				t.Errorf("got %+v", f)
			}
		})
	}
}

// testCA is a CA and a serving certificate it signed for names.
func testCA(t *testing.T, names ...string) (caPEM []byte, cert tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			leafTmpl.IPAddresses = append(leafTmpl.IPAddresses, ip)
		} else {
			leafTmpl.DNSNames = append(leafTmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// tlsDialer answers every dial with an in-memory TLS server serving cert.
type tlsDialer struct {
	cert  tls.Certificate
	pods  []string
	addrs []string
}

// serve accepts one connection on a loopback port and answers with TLS: a real socket, so
// the handshake's failure alerts flow as they do over a port-forward.
func (d *tlsDialer) serve() (net.Conn, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go func() {
		defer l.Close()
		c, err := l.Accept()
		if err != nil {
			return
		}
		s := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{d.cert}, MinVersion: tls.VersionTLS12})
		_ = s.Handshake()
		s.Close()
	}()
	return net.Dial("tcp", l.Addr().String())
}

func (d *tlsDialer) DialPod(_ context.Context, p *corev1.Pod, port int32) (net.Conn, error) {
	d.pods = append(d.pods, fmt.Sprintf("%s:%d", p.Name, port))
	return d.serve()
}

func (d *tlsDialer) DialAddr(_ context.Context, addr string) (net.Conn, error) {
	d.addrs = append(d.addrs, addr)
	return d.serve()
}

func TestCheckServingCerts(t *testing.T) {
	svcName := "vault-injector.vault-injector.svc"
	goodCA, goodCert := testCA(t, svcName, "127.0.0.1")
	otherCA, _ := testCA(t, svcName)
	_, wrongName := func() ([]byte, tls.Certificate) { return testCA(t, "elsewhere.example") }()
	for _, tc := range []struct {
		name    string
		bundle  []byte
		cert    tls.Certificate
		url     string
		want    Status
		wantMsg string
	}{
		{"pods verified", goodCA, goodCert, "", Pass, "serves a certificate for " + svcName + " verified by the caBundle"},
		{"stale caBundle", otherCA, goodCert, "", Fail, "does not verify"},
		{"certificate for another name", goodCA, wrongName, "", Fail, "does not verify for " + svcName},
		{"empty caBundle", nil, goodCert, "", Fail, "caBundle of vi is empty"},
		{"url verified", goodCA, goodCert, "https://127.0.0.1:9443/mutate", Pass, "url 127.0.0.1:9443 serves a certificate for 127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mwc("vi", WebhookName)
			h := &m.Webhooks[0]
			h.ClientConfig.CABundle = tc.bundle
			if tc.url != "" {
				h.ClientConfig.Service, h.ClientConfig.URL = nil, &tc.url
			}
			d := &tlsDialer{cert: tc.cert}
			wp := &webhookPods{Pods: []corev1.Pod{*webhookPod("a", true)}, TargetPort: intstr.FromString("https")}
			fs := checkServingCerts(context.Background(), d, &webhookRef{Config: "vi", Hook: h}, wp)
			if len(fs) != 1 || fs[0].Status != tc.want || !strings.Contains(fs[0].Message, tc.wantMsg) {
				t.Fatalf("got %+v", fs)
			}
			if tc.want == Pass && tc.url == "" && (len(d.pods) != 1 || d.pods[0] != "a:8443") {
				t.Errorf("dialled %v, want pod a on its named port 8443", d.pods)
			}
		})
	}
}
