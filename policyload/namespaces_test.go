package policyload

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// The lookup serves the labels of existing namespaces, follows label changes, and gives nil
// for an unknown namespace.
func TestWatchNamespaces(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	client := fake.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"team": "a"}}})
	labels := WatchNamespaces(ctx, namespacesLW(client), 5*time.Second)
	if got := labels("shop")["team"]; got != "a" {
		t.Fatalf("team label of shop = %q, want a", got)
	}
	if got := labels("nowhere"); got != nil {
		t.Fatalf("unknown namespace labels = %v, want nil", got)
	}
	ns, err := client.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns.Labels["team"] = "b"
	if _, err := client.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the label change", func() bool { return labels("shop")["team"] == "b" })
}
