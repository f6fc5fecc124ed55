package certs

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// RESTAPI turns the API server's answers into the StatusErrors the reconciler branches on, and
// sends what the API server expects (paths, content types, field manager).
func TestRESTAPIRequestsAndErrors(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("Content-Type"))
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/secrets/missing"):
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404,"message":"secrets \"missing\" not found"}`))
		case r.Method == http.MethodPut:
			w.WriteHeader(http.StatusConflict)
			_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Conflict","code":409,"message":"the object has been modified"}`))
		case r.Method == http.MethodPost:
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`not json at all`))
		case r.Method == http.MethodPatch:
			_, _ = w.Write([]byte(`{}`))
		default:
			_, _ = w.Write([]byte(`{"metadata":{"name":"tls","resourceVersion":"7"},"data":{"tls.crt":"YQ=="}}`))
		}
	}))
	t.Cleanup(srv.Close)
	api, err := NewRESTAPI(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	s, err := api.GetSecret(ctx, "ns", "tls")
	if err != nil || s.ResourceVersion != "7" || string(s.Data["tls.crt"]) != "a" {
		t.Fatalf("GetSecret = %+v, %v", s, err)
	}
	if _, err := api.GetSecret(ctx, "ns", "missing"); !apierrors.IsNotFound(err) {
		t.Errorf("404 Status: %v, want IsNotFound", err)
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "tls", Namespace: "ns", ResourceVersion: "7"}}
	if err := api.UpdateSecret(ctx, sec); !apierrors.IsConflict(err) {
		t.Errorf("409 Status: %v, want IsConflict", err)
	}
	if err := api.CreateSecret(ctx, sec); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "not json at all") {
		t.Errorf("403 without a Status: %v, want IsForbidden carrying the body", err)
	}
	if err := api.PatchWebhookConfig(ctx, "vault-injector", []byte(`{"webhooks":[]}`)); err != nil {
		t.Errorf("patch: %v", err)
	}
	want := []string{
		"GET /api/v1/namespaces/ns/secrets/tls ",
		"GET /api/v1/namespaces/ns/secrets/missing ",
		"PUT /api/v1/namespaces/ns/secrets/tls?fieldManager=vault-injector application/json",
		"POST /api/v1/namespaces/ns/secrets?fieldManager=vault-injector application/json",
		"PATCH /apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/vault-injector?fieldManager=vault-injector application/strategic-merge-patch+json",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
