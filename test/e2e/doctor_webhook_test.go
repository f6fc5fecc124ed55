//go:build e2e

package e2e

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/vault-injector/vault-injector/test/cluster"
)

// The webhook behind a Service, reached the way doctor reaches it from a laptop: a
// port-forward through the API server and the kubelet to each pod, the certificate verified
// with the caBundle and the Service's DNS name. The webhook pod is the product image serving
// on a loopback port (hostNetwork); the configuration's namespaceSelector matches no
// namespace, so the API server itself never calls it (nothing here goes to a Service IP).
// Then the caBundle goes stale, then the webhook is scaled to zero: each gives its own ✖.
func TestDoctorWebhookPodsThroughPortForward(t *testing.T) {
	ns := namespace(t, "doctor-pf", false, nil)
	const svcName, config = "doctor-webhook", "doctor-pf"
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := env.c.CA.Issue(certFile, keyFile, "doctor-webhook", nil, false, svcName+"."+ns+".svc"); err != nil {
		t.Fatal(err)
	}
	port := cluster.FreePort()
	var portNum int32
	if _, err := fmt.Sscan(port, &portNum); err != nil {
		t.Fatal(err)
	}
	root := int64(0)
	dirType := corev1.HostPathDirectory
	labels := map[string]string{"app": "doctor-pf-webhook"}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "webhook", Labels: labels},
		Spec: corev1.PodSpec{
			HostNetwork:                   true,
			TerminationGracePeriodSeconds: int64p(1),
			Containers: []corev1.Container{{
				Name: "webhook", Image: agentImage, ImagePullPolicy: corev1.PullNever,
				Args: []string{"webhook", "--listen=127.0.0.1:" + port, "--tls-cert-file=/certs/tls.crt", "--tls-key-file=/certs/tls.key",
					// Its service account may read nothing: a fixed env style, no nodes to watch.
					"--vault-address=" + env.vault.Addr, "--agent-image=" + agentImage, "--env-style=file"},
				Ports:           []corev1.ContainerPort{{Name: "https", ContainerPort: portNum, HostPort: portNum}},
				SecurityContext: &corev1.SecurityContext{RunAsUser: &root},
				VolumeMounts:    []corev1.VolumeMount{{Name: "certs", MountPath: "/certs", ReadOnly: true}},
			}},
			Volumes: []corev1.Volume{{Name: "certs", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: dir, Type: &dirType}}}},
		},
	}
	if _, err := env.c.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: svcName},
		Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 443, TargetPort: intstr.FromString("https")}}},
	}
	if _, err := env.c.Client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	mwc := webhookConfiguration(config, "", admissionregistrationv1.Fail, injectorMatchConditions, map[string]string{"doctor-pf-never": "selected"})
	svcPort := int32(443)
	path := "/mutate"
	mwc.Webhooks[0].ClientConfig.URL = nil
	mwc.Webhooks[0].ClientConfig.Service = &admissionregistrationv1.ServiceReference{Namespace: ns, Name: svcName, Path: &path, Port: &svcPort}
	mwcs := env.c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	if _, err := mwcs.Create(ctx, mwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mwcs.Delete(ctx, config, metav1.DeleteOptions{}) })
	waitPod(t, ns, "webhook", 60*time.Second, "webhook pod ready", func(p *corev1.Pod) bool { return podReady(p) })

	// The webhook listens once its pod is ready; give it a moment to open its port.
	var out string
	var code int
	for i := 0; i < 20; i++ {
		if out, code = doctorRun(t, "--webhook-config="+config, "--all", "-n", ns); code == 0 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	lineWith(t, out, "✔", "1 webhook pod(s) ready behind Service "+ns+"/"+svcName)
	lineWith(t, out, "✔", "pod webhook serves a certificate for "+svcName+"."+ns+".svc verified by the caBundle")

	// A caBundle of another CA: stale.
	other, err := cluster.NewCA("not-the-webhook-ca")
	if err != nil {
		t.Fatal(err)
	}
	m, err := mwcs.Get(ctx, config, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m.Webhooks[0].ClientConfig.CABundle = other.CertPEM
	if _, err := mwcs.Update(ctx, m, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	out, code = doctorRun(t, "--webhook-config="+config, "--all", "-n", ns)
	if code != 1 {
		t.Errorf("stale caBundle: exit code %d, want 1", code)
	}
	lineWith(t, out, "✖", "pod webhook serves a certificate the caBundle does not verify", "fix:", "caBundle of "+config+" is stale")

	// Scaled to zero: no pod behind the Service.
	grace := int64(0)
	if err := env.c.Client.CoreV1().Pods(ns).Delete(ctx, "webhook", metav1.DeleteOptions{GracePeriodSeconds: &grace}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := env.c.Client.CoreV1().Pods(ns).Get(ctx, "webhook", metav1.GetOptions{}); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("webhook pod not gone after 30s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	out, code = doctorRun(t, "--webhook-config="+config, "--all", "-n", ns)
	if code != 1 {
		t.Errorf("scaled to zero: exit code %d, want 1", code)
	}
	lineWith(t, out, "✖", "no pod behind Service "+ns+"/"+svcName, "every selected pod is refused", "fix:", "scale")
}
