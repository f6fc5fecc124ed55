// Package envfilecheck holds only tests: what internal/envfile writes, the kubelet reads back
// unchanged, key by key (k8s.io/kubernetes/pkg/kubelet/util/env, the parser behind
// env[].valueFrom.fileKeyRef); and what it refuses is what the kubelet would mangle or reject.
package envfilecheck

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	kubeletenv "k8s.io/kubernetes/pkg/kubelet/util/env"

	"github.com/vault-injector/vault-injector/internal/envfile"
)

// kubeletReads is what the kubelet would set each variable to: "" means it refuses to start
// the container (a missing key), err that the file does not parse.
func kubeletReads(t *testing.T, content []byte, names []string) (map[string]string, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "app.env")
	if err := os.WriteFile(p, content, 0o644); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, n := range names {
		v, err := kubeletenv.ParseEnv(p, n)
		if err != nil {
			return nil, err
		}
		out[n] = v
	}
	return out, nil
}

func check(t *testing.T, vars []envfile.Var) {
	t.Helper()
	content, err := envfile.Encode(vars)
	names := make([]string, len(vars))
	for i, v := range vars {
		names[i] = v.Name
	}
	if err != nil {
		// Refused: then the kubelet must indeed not carry the value unchanged (or the name).
		var e *envfile.Error
		if !asError(err, &e) {
			t.Fatalf("Encode(%q) failed without naming the variable: %v", vars, err)
		}
		return
	}
	got, err := kubeletReads(t, content, names)
	if err != nil {
		t.Fatalf("the kubelet cannot parse what Encode wrote for %q: %v\n%s", vars, err, content)
	}
	for _, v := range vars {
		if got[v.Name] != v.Value {
			t.Fatalf("variable %q: wrote %q, the kubelet reads %q\n%s", v.Name, v.Value, got[v.Name], content)
		}
	}
	// And our own reader (vault-injector exec) agrees with the kubelet.
	mine, err := envfile.Parse(content)
	if err != nil || len(mine) != len(vars) {
		t.Fatalf("envfile.Parse = %q, %v", mine, err)
	}
}

func asError(err error, target **envfile.Error) bool {
	e, ok := err.(*envfile.Error)
	if ok {
		*target = e
	}
	return ok
}

func TestKubeletReadsWhatWeWrite(t *testing.T) {
	for _, vars := range [][]envfile.Var{
		{{Name: "DB_USER", Value: "v-kubernetes-app-x8Fj"}, {Name: "DB_PASSWORD", Value: "A1a-#=$`\"\\ {}"}},
		{{Name: "PEM", Value: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}},
		{{Name: "app.key-1", Value: " leading and trailing blanks "}, {Name: "TAB", Value: "\ta\t"}},
		{{Name: "LONG", Value: strings.Repeat("x", envfile.MaxLine-len("LONG='")-1)}},
		{{Name: "CR", Value: "a\rb"}},
	} {
		check(t, vars)
	}
}

// Values the writer refuses are exactly those the kubelet would not return unchanged.
func TestRefusedValuesWouldBeMangled(t *testing.T) {
	for _, v := range []string{"it's", "", "a\r\nb", strings.Repeat("x", envfile.MaxLine)} {
		if _, err := envfile.Encode([]envfile.Var{{Name: "K", Value: v}}); err == nil {
			t.Errorf("Encode accepted %q", v)
			continue
		}
		// Written naively, the kubelet would read something else, or fail.
		naive := []byte("K='" + v + "'\n")
		got, err := kubeletReads(t, naive, []string{"K"})
		if err == nil && got["K"] == v && v != "" {
			t.Errorf("value %q refused, yet the kubelet reads it back unchanged", v)
		}
	}
}

func FuzzKubeletReadsWhatWeWrite(f *testing.F) {
	f.Add("A", "v", "B", "x\ny")
	f.Add("K", "'", "L", "")
	f.Add("#X", "v", "Y", "a\r\nb")
	f.Add("A B", "v", "C=D", "w")
	f.Fuzz(func(t *testing.T, n1, v1, n2, v2 string) {
		check(t, []envfile.Var{{Name: n1, Value: v1}, {Name: n2, Value: v2}})
	})
}
