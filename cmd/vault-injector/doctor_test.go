package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// doctor refuses a bad command line before it reads any kubeconfig, naming what is expected.
func TestDoctorCommandLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no target", []string{"-n", "ns"}, "give exactly one target"},
		{"two targets", []string{"app", "--all"}, "give exactly one target"},
		{"file and object", []string{"-f", "x.yaml", "deployment/app"}, "give exactly one target"},
		{"two objects", []string{"a", "b"}, "give exactly one target"},
		{"unknown kind", []string{"service/web"}, "expected NAME (a pod) or KIND/NAME"},
		{"bad output", []string{"app", "-o", "yaml"}, `-o "yaml": expected text or json`},
		{"flags after the object", []string{"deployment/app", "-n", "ns", "-o", "xml"}, `-o "xml"`},
		{"missing kubeconfig", []string{"app", "--kubeconfig", "/nonexistent/kubeconfig"}, "kubeconfig"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"doctor"}, tc.args...), strings.NewReader(""), &stdout, &stderr)
			if code != 1 || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, stderr %q, want 1 and %q", code, stderr.String(), tc.want)
			}
		})
	}
}
