package main

import (
	"strings"
	"testing"
)

// --agent-uid takes a UID or "auto" (OpenShift: no runAsUser/runAsGroup on our containers);
// anything else stops the command with the flag named.
func TestAgentUIDFlag(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		want        []string // in the injected pod
		absent      []string
		err         string
	}{
		{"default", "", []string{"runAsUser: 65532", "runAsGroup: 65532", "runAsNonRoot: true"}, nil, ""},
		{"a UID", "1001", []string{"runAsUser: 1001", "runAsGroup: 1001"}, []string{"65532"}, ""},
		{"auto", "auto", []string{"runAsNonRoot: true"}, []string{"runAsUser", "runAsGroup"}, ""},
		{"root", "0", nil, nil, `invalid value "0" for flag -agent-uid: expected auto or a UID from 1 to 2147483647`},
		{"a word", "openshift", nil, nil, `invalid value "openshift" for flag -agent-uid`},
		{"beyond 32 bits", "4294967296", nil, nil, `invalid value "4294967296" for flag -agent-uid`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"inject", "-f", "-"}
			if tc.value != "" {
				args = append(args, "--agent-uid="+tc.value)
			}
			code, out, errOut := runCmd(t, pod, args...)
			if tc.err != "" {
				if code == 0 || !strings.Contains(errOut, tc.err) {
					t.Fatalf("exit %d, stderr %q; want an error containing %q", code, errOut, tc.err)
				}
				return
			}
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q", w)
				}
			}
			for _, a := range tc.absent {
				if strings.Contains(out, a) {
					t.Errorf("output has %q", a)
				}
			}
		})
	}
}
