package main

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// vault-injector-webhook (tag webhookonly) is what the chart's Deployment runs: it must not
// link the other faces' libraries, whose code would be paged in and counted in its RSS.
func TestWebhookOnlyBuildLeavesOutTheCLI(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-tags", "webhookonly", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	deps := strings.Fields(string(out))
	for _, pkg := range []string{
		"github.com/vault-injector/vault-injector/agent", "github.com/vault-injector/vault-injector/doctor",
		"github.com/vault-injector/vault-injector/inject", "github.com/vault-injector/vault-injector/envexec",
		"github.com/hashicorp/vault/api", "github.com/Masterminds/sprig/v3", "k8s.io/client-go/tools/portforward",
		"k8s.io/client-go/kubernetes",
	} {
		if slices.Contains(deps, pkg) {
			t.Errorf("vault-injector-webhook links %s", pkg)
		}
	}
	for _, pkg := range []string{"github.com/vault-injector/vault-injector/webhook", "github.com/vault-injector/vault-injector/policyload"} {
		if !slices.Contains(deps, pkg) {
			t.Errorf("vault-injector-webhook does not link %s", pkg)
		}
	}
}

func TestWebhookOnlyBinaryServesOnlyTheWebhook(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "vault-injector-webhook")
	if out, err := exec.Command("go", "build", "-tags", "webhookonly", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		args       []string
		code       int
		wantStderr string
	}{
		{[]string{"inject", "-f", "-"}, 2, `unknown command "inject"`},
		{[]string{"doctor", "pod/x"}, 2, `unknown command "doctor"`},
		{[]string{"agent"}, 2, `unknown command "agent"`},
		{[]string{"webhook", "--cert-mode=files"}, 1, "--tls-cert-file and --tls-key-file are required"},
		{[]string{"version"}, 0, ""},
	} {
		cmd := exec.Command(bin, tc.args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.code || !strings.Contains(stderr.String(), tc.wantStderr) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", tc.args, code, stderr.String(), tc.code, tc.wantStderr)
		}
	}
}
