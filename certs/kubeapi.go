package certs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
)

// API is all of the Kubernetes API the self-managed mode uses: one Secret and one
// MutatingWebhookConfiguration. Errors are *apierrors.StatusError, so apierrors.IsNotFound,
// IsConflict and friends apply.
type API interface {
	GetSecret(ctx context.Context, namespace, name string) (*corev1.Secret, error)
	CreateSecret(ctx context.Context, s *corev1.Secret) error
	UpdateSecret(ctx context.Context, s *corev1.Secret) error
	GetWebhookConfig(ctx context.Context, name string) (*admissionregistrationv1.MutatingWebhookConfiguration, error)
	// PatchWebhookConfig applies a strategic merge patch.
	PatchWebhookConfig(ctx context.Context, name string, patch []byte) error
}

// RESTAPI implements API with plain JSON requests over client-go's transport (auth, TLS,
// in-cluster config). It deliberately avoids the generated clientset: that links every API
// group of Kubernetes into the binary, which is also the agent every pod runs, and costs ~25 MB
// of binary and ~14 MiB of RSS at start.
type RESTAPI struct {
	host   string
	client *http.Client
	ua     string
}

// NewRESTAPI builds the client from a rest.Config.
func NewRESTAPI(cfg *rest.Config) (*RESTAPI, error) {
	c, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	host := strings.TrimSuffix(cfg.Host, "/")
	if !strings.Contains(host, "://") {
		host = "https://" + host
	}
	return &RESTAPI{host: host + strings.TrimSuffix(cfg.APIPath, "/"), client: c, ua: cfg.UserAgent}, nil
}

var (
	secretsResource = schema.GroupResource{Resource: "secrets"}
	mwcResource     = schema.GroupResource{Group: "admissionregistration.k8s.io", Resource: "mutatingwebhookconfigurations"}
)

func secretPath(ns, name string) string {
	p := "/api/v1/namespaces/" + url.PathEscape(ns) + "/secrets"
	if name != "" {
		p += "/" + url.PathEscape(name)
	}
	return p
}

func mwcPath(name string) string {
	return "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/" + url.PathEscape(name)
}

func (a *RESTAPI) GetSecret(ctx context.Context, ns, name string) (*corev1.Secret, error) {
	var s corev1.Secret
	return &s, a.do(ctx, http.MethodGet, secretPath(ns, name), "", nil, &s, secretsResource, name)
}

func (a *RESTAPI) CreateSecret(ctx context.Context, s *corev1.Secret) error {
	return a.do(ctx, http.MethodPost, secretPath(s.Namespace, "")+"?fieldManager="+FieldManager, "application/json", s, nil, secretsResource, s.Name)
}

func (a *RESTAPI) UpdateSecret(ctx context.Context, s *corev1.Secret) error {
	return a.do(ctx, http.MethodPut, secretPath(s.Namespace, s.Name)+"?fieldManager="+FieldManager, "application/json", s, nil, secretsResource, s.Name)
}

func (a *RESTAPI) GetWebhookConfig(ctx context.Context, name string) (*admissionregistrationv1.MutatingWebhookConfiguration, error) {
	var m admissionregistrationv1.MutatingWebhookConfiguration
	return &m, a.do(ctx, http.MethodGet, mwcPath(name), "", nil, &m, mwcResource, name)
}

func (a *RESTAPI) PatchWebhookConfig(ctx context.Context, name string, patch []byte) error {
	return a.do(ctx, http.MethodPatch, mwcPath(name)+"?fieldManager="+FieldManager, "application/strategic-merge-patch+json", json.RawMessage(patch), nil, mwcResource, name)
}

// do sends one request; a non-2xx answer becomes the API server's Status as a StatusError.
func (a *RESTAPI) do(ctx context.Context, method, path, contentType string, in, out any, gr schema.GroupResource, name string) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.host+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if a.ua != "" {
		req.Header.Set("User-Agent", a.ua)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var st metav1.Status
		if json.Unmarshal(raw, &st) == nil && st.Kind == "Status" {
			return &apierrors.StatusError{ErrStatus: st}
		}
		return apierrors.NewGenericServerResponse(resp.StatusCode, method, gr, name, strings.TrimSpace(string(raw)), 0, true)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("decode %s %s: %w", gr.String(), name, err)
		}
	}
	return nil
}
