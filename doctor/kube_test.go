package doctor

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

func TestAPIPath(t *testing.T) {
	for _, tc := range []struct {
		r        Resource
		ns, name string
		want     string
	}{
		{resPods, "app", "web-1", "/api/v1/namespaces/app/pods/web-1"},
		{resPods, "app", "", "/api/v1/namespaces/app/pods"},
		{resNamespaces, "", "app", "/api/v1/namespaces/app"},
		{resTokenRequest, "app", "web", "/api/v1/namespaces/app/serviceaccounts/web/token"},
		{resTokenReviews, "", "", "/apis/authentication.k8s.io/v1/tokenreviews"},
		{resDeployments, "app", "web", "/apis/apps/v1/namespaces/app/deployments/web"},
		{resCronJobs, "app", "nightly", "/apis/batch/v1/namespaces/app/cronjobs/nightly"},
		{resWebhookConfigs, "", "", "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"},
	} {
		if got := apiPath(tc.r, tc.ns, tc.name); got != tc.want {
			t.Errorf("apiPath(%s, %q, %q) = %s, want %s", tc.r.Resource, tc.ns, tc.name, got, tc.want)
		}
	}
}

// The REST client sends what the API server expects (kind, apiVersion, dryRun) and decodes
// its answers and its errors.
func TestRestKube(t *testing.T) {
	var gotPath, gotQuery string
	var gotBody map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotQuery = r.URL.Path, r.URL.RawQuery
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodGet {
			w.WriteHeader(404)
			_ = json.NewEncoder(w).Encode(metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: "Failure", Reason: metav1.StatusReasonNotFound, Code: 404, Message: `pods "x" not found`})
			return
		}
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &gotBody)
		gotBody["metadata"].(map[string]any)["name"] = "web-doctor-abc"
		_ = json.NewEncoder(w).Encode(gotBody)
	}))
	defer srv.Close()
	k, err := NewKube(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "web-doctor-", Namespace: "app"}}
	got := &corev1.Pod{}
	if err := k.Create(context.Background(), resPods, "app", "", pod, got, true); err != nil {
		t.Fatal(err)
	}
	if gotPath != "/api/v1/namespaces/app/pods" || gotQuery != "dryRun=All" || gotBody["kind"] != "Pod" || gotBody["apiVersion"] != "v1" || got.Name != "web-doctor-abc" {
		t.Errorf("create: %s?%s %v -> %q", gotPath, gotQuery, gotBody, got.Name)
	}
	err = k.Get(context.Background(), resPods, "app", "x", &corev1.Pod{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("get: want a NotFound error, got %v", err)
	}
}
