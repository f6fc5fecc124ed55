package main

import (
	"strings"
	"testing"
)

// A bad in-flight flag stops the webhook at start-up, naming the flag.
func TestWebhookLimitFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		arg, want string
	}{
		{"--max-requests-in-flight=0", "--max-requests-in-flight=0: expected at least 1"},
		{"--max-in-flight-bytes=1Mi", `--max-in-flight-bytes="1Mi": expected a size of at least 4Mi`},
		{"--max-in-flight-bytes=lots", `--max-in-flight-bytes="lots"`},
	} {
		t.Run(tc.arg, func(t *testing.T) {
			code, _, errOut := runCmd(t, "", "webhook", tc.arg, "--cert-mode=files", "--tls-cert-file=x", "--tls-key-file=y")
			if code != 1 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q; want 1 and %q", code, errOut, tc.want)
			}
		})
	}
}
