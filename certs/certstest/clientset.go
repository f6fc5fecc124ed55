// Package certstest adapts a client-go clientset (in tests: the fake one) to certs.API. Only
// tests import it, so the generated clientset stays out of the product binary.
package certstest

import (
	"context"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/vault-injector/vault-injector/certs"
)

// Clientset is certs.API over a kubernetes.Interface.
type Clientset struct{ kubernetes.Interface }

var _ certs.API = Clientset{}

func (c Clientset) GetSecret(ctx context.Context, ns, name string) (*corev1.Secret, error) {
	return c.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
}

func (c Clientset) CreateSecret(ctx context.Context, s *corev1.Secret) error {
	_, err := c.CoreV1().Secrets(s.Namespace).Create(ctx, s, metav1.CreateOptions{FieldManager: certs.FieldManager})
	return err
}

func (c Clientset) UpdateSecret(ctx context.Context, s *corev1.Secret) error {
	_, err := c.CoreV1().Secrets(s.Namespace).Update(ctx, s, metav1.UpdateOptions{FieldManager: certs.FieldManager})
	return err
}

func (c Clientset) GetWebhookConfig(ctx context.Context, name string) (*admissionregistrationv1.MutatingWebhookConfiguration, error) {
	return c.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
}

func (c Clientset) PatchWebhookConfig(ctx context.Context, name string, patch []byte) error {
	_, err := c.AdmissionregistrationV1().MutatingWebhookConfigurations().Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{FieldManager: certs.FieldManager})
	return err
}
