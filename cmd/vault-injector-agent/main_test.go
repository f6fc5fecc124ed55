package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
)

func TestFaces(t *testing.T) {
	var out, errb strings.Builder
	if code := run(context.Background(), []string{"version"}, &out, &errb); code != 0 || strings.TrimSpace(out.String()) != version {
		t.Fatalf("version: %d %q", code, out.String())
	}
	if code := run(context.Background(), []string{"webhook"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `unknown command "webhook"`) {
		t.Fatalf("webhook: %d %q", code, errb.String())
	}
	errb.Reset()
	if code := run(context.Background(), []string{"agent", "ready", "--file=/nonexistent/ready"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "not ready") {
		t.Fatalf("agent ready: %d %q", code, errb.String())
	}
}

// The agent binary must not link what only the webhook, inject and doctor use: their package
// initialisers would run at every agent start.
func TestLeavesOutWebhookLibraries(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range []string{
		"k8s.io/client-go/rest", "k8s.io/client-go/kubernetes", "github.com/prometheus/client_golang/prometheus",
		"github.com/vault-injector/vault-injector/webhook", "github.com/gorilla/mux",
	} {
		for _, dep := range strings.Fields(string(out)) {
			if dep == pkg {
				t.Errorf("vault-injector-agent links %s", pkg)
			}
		}
	}
}
