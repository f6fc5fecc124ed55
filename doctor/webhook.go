package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// WebhookName is the name of our entry in the MutatingWebhookConfiguration, the same in the
// chart and the kustomize base; doctor finds the configuration by it.
const WebhookName = "pods.vault-injector.io"

// webhookRef is our entry and the configuration holding it.
type webhookRef struct {
	Config string
	Hook   *admissionregistrationv1.MutatingWebhook
}

// checkWebhookConfig finds the MutatingWebhookConfiguration holding our webhook: the one
// named name, or, when name is empty, any holding an entry named WebhookName.
func checkWebhookConfig(ctx context.Context, c Kube, name string) (*webhookRef, Finding) {
	const check = "webhook-configuration"
	fix := "install the chart (helm install vault-injector deploy/helm/vault-injector) or pass --webhook-config NAME"
	var configs []admissionregistrationv1.MutatingWebhookConfiguration
	if name != "" {
		m, err := get[admissionregistrationv1.MutatingWebhookConfiguration](ctx, c, resWebhookConfigs, "", name)
		if apierrors.IsNotFound(err) {
			return nil, fail(check, "", fix, "MutatingWebhookConfiguration %q does not exist", name)
		}
		if err != nil {
			return nil, fail(check, "", "check the kubeconfig's access to mutatingwebhookconfigurations", "read MutatingWebhookConfiguration %q: %v", name, err)
		}
		configs = append(configs, *m)
	} else {
		list, err := list[admissionregistrationv1.MutatingWebhookConfigurationList](ctx, c, resWebhookConfigs, "", "")
		if err != nil {
			return nil, fail(check, "", "check the kubeconfig's access to mutatingwebhookconfigurations", "list MutatingWebhookConfigurations: %v", err)
		}
		configs = list.Items
	}
	for i := range configs {
		for j := range configs[i].Webhooks {
			if h := &configs[i].Webhooks[j]; h.Name == WebhookName {
				return &webhookRef{Config: configs[i].Name, Hook: h}, pass(check, "", "MutatingWebhookConfiguration %s holds webhook %s", configs[i].Name, WebhookName)
			}
		}
	}
	if name != "" {
		return nil, fail(check, "", fix, "MutatingWebhookConfiguration %q has no webhook named %s", name, WebhookName)
	}
	return nil, fail(check, "", fix, "no MutatingWebhookConfiguration holds a webhook named %s: nothing calls vault-injector", WebhookName)
}

// webhookPods are the pods behind the webhook's Service, with the port each serves on.
type webhookPods struct {
	Service    *corev1.Service
	Pods       []corev1.Pod
	TargetPort intstr.IntOrString
}

// checkWebhookPods finds the pods behind the Service the webhook calls and checks that at
// least one exists and every one is ready. A URL clientConfig has no pods to look at.
func checkWebhookPods(ctx context.Context, c Kube, ref *webhookRef) (*webhookPods, Finding) {
	const check = "webhook-pods"
	svcRef := ref.Hook.ClientConfig.Service
	if svcRef == nil {
		return nil, pass(check, "", "the webhook is called at its URL %s (no Service, so no pods to check)", urlOf(ref.Hook))
	}
	svc, err := get[corev1.Service](ctx, c, resServices, svcRef.Namespace, svcRef.Name)
	if err != nil {
		return nil, fail(check, "", fmt.Sprintf("create Service %s/%s or fix clientConfig.service of %s", svcRef.Namespace, svcRef.Name, ref.Config),
			"the webhook's Service %s/%s: %v", svcRef.Namespace, svcRef.Name, err)
	}
	port := int32(443)
	if svcRef.Port != nil {
		port = *svcRef.Port
	}
	wp := &webhookPods{Service: svc, TargetPort: intstr.FromInt32(port)}
	for _, p := range svc.Spec.Ports {
		if p.Port == port {
			wp.TargetPort = p.TargetPort
		}
	}
	pods, err := list[corev1.PodList](ctx, c, resPods, svc.Namespace, labels.SelectorFromSet(svc.Spec.Selector).String())
	if err != nil {
		return nil, fail(check, "", "check the kubeconfig's access to pods in "+svc.Namespace, "list the webhook's pods: %v", err)
	}
	var ready, notReady []string
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		wp.Pods = append(wp.Pods, p)
		if podReady(&p) {
			ready = append(ready, p.Name)
		} else {
			notReady = append(notReady, p.Name)
		}
	}
	policy := "Fail"
	if ref.Hook.FailurePolicy != nil {
		policy = string(*ref.Hook.FailurePolicy)
	}
	switch {
	case len(wp.Pods) == 0:
		return wp, fail(check, "", fmt.Sprintf("kubectl -n %s scale deployment %s --replicas=2 (or see why its pods do not start: kubectl -n %s get events)", svc.Namespace, svc.Name, svc.Namespace),
			"no pod behind Service %s/%s: with failurePolicy %s every selected pod is %s", svc.Namespace, svc.Name, policy, map[bool]string{true: "refused", false: "created without injection"}[policy == "Fail"])
	case len(notReady) > 0:
		return wp, fail(check, "", fmt.Sprintf("kubectl -n %s describe pod %s", svc.Namespace, notReady[0]),
			"webhook pods not ready: %s (ready: %d of %d)", strings.Join(notReady, ", "), len(ready), len(wp.Pods))
	}
	return wp, pass(check, "", "%d webhook pod(s) ready behind Service %s/%s", len(ready), svc.Namespace, svc.Name)
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func urlOf(h *admissionregistrationv1.MutatingWebhook) string {
	if h.ClientConfig.URL != nil {
		return *h.ClientConfig.URL
	}
	return ""
}

// Dialer reaches a webhook endpoint: a pod's port (through a port-forward) or a URL's host.
type Dialer interface {
	DialPod(ctx context.Context, pod *corev1.Pod, port int32) (net.Conn, error)
	DialAddr(ctx context.Context, addr string) (net.Conn, error)
}

// checkServingCerts verifies, for each webhook pod (or the URL), the certificate it serves
// right now against the caBundle, with the server name the API server uses: the Service's DNS
// name, or the URL's host.
func checkServingCerts(ctx context.Context, d Dialer, ref *webhookRef, wp *webhookPods) []Finding {
	const check = "webhook-certificate"
	bundle := ref.Hook.ClientConfig.CABundle
	if len(bundle) == 0 {
		return []Finding{fail(check, "", fmt.Sprintf("the webhook fills caBundle itself in certs.mode=selfManaged (see its logs); with cert-manager check the cert-manager.io/inject-ca-from annotation of %s", ref.Config),
			"caBundle of %s is empty: the API server cannot verify the webhook", ref.Config)}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle) {
		return []Finding{fail(check, "", "set caBundle to the PEM of the CA that signs the webhook's certificate", "caBundle of %s holds no PEM certificate", ref.Config)}
	}
	if ref.Hook.ClientConfig.Service == nil {
		u, err := url.Parse(urlOf(ref.Hook))
		if err != nil || u.Host == "" {
			return []Finding{fail(check, "", "set clientConfig.url to https://HOST[:PORT]/mutate", "clientConfig.url %q of %s is not a URL", urlOf(ref.Hook), ref.Config)}
		}
		addr := u.Host
		if u.Port() == "" {
			addr = net.JoinHostPort(u.Hostname(), "443")
		}
		conn, err := d.DialAddr(ctx, addr)
		return []Finding{verifyServed(check, "url "+u.Host, conn, err, u.Hostname(), pool, ref.Config)}
	}
	if wp == nil {
		return nil
	}
	name := ref.Hook.ClientConfig.Service.Name + "." + ref.Hook.ClientConfig.Service.Namespace + ".svc"
	var out []Finding
	for i := range wp.Pods {
		p := &wp.Pods[i]
		port, err := containerPort(p, wp.TargetPort)
		if err != nil {
			out = append(out, fail(check, "", "fix the Service's targetPort", "pod %s: %v", p.Name, err))
			continue
		}
		conn, err := d.DialPod(ctx, p, port)
		out = append(out, verifyServed(check, "pod "+p.Name, conn, err, name, pool, ref.Config))
	}
	return out
}

// verifyServed does the TLS handshake the API server would do and reports the result.
func verifyServed(check, who string, conn net.Conn, dialErr error, serverName string, pool *x509.CertPool, config string) Finding {
	if dialErr != nil {
		return fail(check, "", "check that the webhook listens (its logs) and that port-forward is allowed to you (pods/portforward)", "%s: cannot reach it: %v", who, dialErr)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tls.Client(conn, &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12})
	if err := tc.Handshake(); err != nil {
		return fail(check, "", fmt.Sprintf("the caBundle of %s is stale or the certificate lacks %s: restart the webhook (self-managed certificates patch caBundle at start) or re-issue the certificate", config, serverName),
			"%s serves a certificate the caBundle does not verify for %s: %v", who, serverName, err)
	}
	leaf := tc.ConnectionState().PeerCertificates[0]
	return pass(check, "", "%s serves a certificate for %s verified by the caBundle (expires %s)", who, serverName, leaf.NotAfter.UTC().Format(time.RFC3339))
}

// containerPort resolves a Service targetPort (number or name) on a pod.
func containerPort(p *corev1.Pod, target intstr.IntOrString) (int32, error) {
	if target.Type == intstr.Int {
		return target.IntVal, nil
	}
	for _, c := range p.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == target.StrVal {
				return cp.ContainerPort, nil
			}
		}
	}
	return 0, fmt.Errorf("no container port named %q", target.StrVal)
}
