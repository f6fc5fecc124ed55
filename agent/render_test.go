package agent

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// fixedFetch answers every `secret` call with the same data, or fails for paths under "fail/".
func fixedFetch(_ context.Context, path string, data map[string]any) (*Secret, error) {
	if strings.HasPrefix(path, "fail/") {
		return nil, errors.New("backend unavailable")
	}
	return &Secret{Data: map[string]any{"user": "u", "list": []any{"a", "b"}, "n": 3, "args": data}}, nil
}

func TestWriteFileOnlyWhenChanged(t *testing.T) {
	dir := t.TempDir()
	for i, tc := range []struct {
		content string
		mode    os.FileMode
		want    writeOutcome
	}{
		{"one", 0o644, created},
		{"one", 0o644, unchanged}, // same bytes, same mode
		{"one", 0o400, replaced},  // mode change alone rewrites
		{"two", 0o400, replaced},
		{"two", 0o400, unchanged},
	} {
		got, err := writeFile(dir, "sub/f", []byte(tc.content), tc.mode)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("step %d: outcome %d, want %d", i, got, tc.want)
		}
		fi, err := os.Stat(filepath.Join(dir, "sub/f"))
		if err != nil || fi.Mode().Perm() != tc.mode {
			t.Errorf("step %d: mode %v (err %v), want %v", i, fi.Mode().Perm(), err, tc.mode)
		}
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "sub"))
	if len(ents) != 1 {
		t.Errorf("%d entries left in the directory, want only the file (no temp files)", len(ents))
	}
}

func TestWriteFileFailureLeavesNoTempFile(t *testing.T) {
	dir := t.TempDir()
	// A directory where the file should be: the rename over it fails.
	if err := os.MkdirAll(filepath.Join(dir, "f", "inside"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := writeFile(dir, "f", []byte("x"), 0o644); err == nil {
		t.Fatal("writing over a directory succeeded")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "f" {
		t.Errorf("entries %v, want only the directory (the temp file removed)", ents)
	}
}

func TestRenderFetchFailureKeepsItsCause(t *testing.T) {
	_, err := render(context.Background(), tmpl{name: "db.env", text: `{{ with secret "fail/x" }}{{ .Data.user }}{{ end }}`}, fixedFetch)
	if err == nil || !strings.Contains(err.Error(), "template db.env: backend unavailable") {
		t.Fatalf("error %v, want the template name and the backend's error", err)
	}
	if isPermanent(err) {
		t.Error("a backend failure was classified permanent: it must be retried")
	}
}

func TestRenderCapsOutput(t *testing.T) {
	_, err := render(context.Background(), tmpl{name: "loop", text: `{{ range 100000000 }}0123456789{{ end }}`}, fixedFetch)
	if err == nil || !strings.Contains(err.Error(), "template loop: output exceeds") {
		t.Fatalf("error %v, want the output cap to stop a runaway template", err)
	}
}

func TestWriteArgumentsAreCachedByValue(t *testing.T) {
	if cacheKey("p", map[string]any{"a": "1", "b": "2"}) != cacheKey("p", map[string]any{"b": "2", "a": "1"}) {
		t.Error("argument order changes the cache key")
	}
	if cacheKey("p", map[string]any{"a": "1"}) == cacheKey("p", map[string]any{"a": "2"}) {
		t.Error("different arguments share a cache key")
	}
}

// FuzzRender feeds arbitrary template text: rendering returns output or an error, never panics.
func FuzzRender(f *testing.F) {
	for _, s := range []string{
		`{{ with secret "kv/a" }}{{ .Data.user }}{{ end }}`,
		`{{ range secret "kv/a" "x=1" }}{{ . }}{{ end }}`,
		`{{ secret "kv/a" | toJSON | base64Encode | base64Decode }}`,
		`{{ with secret "kv/a" }}{{ .Data.list | join "," | split "," | toYAML | indent 2 }}{{ end }}`,
		`{{ "a b" | replaceAll " " "_" | toUpper | trimSpace | contains "A" }}`,
		`{{ indent -1 "x" }}{{ env "HOME" }}`,
		`{{ with secret "fail/x" }}{{ end }}`,
		`{{ template "x" }}{{ define "x" }}{{ template "x" }}{{ end }}`,
		`{{ with "{\"a\":[1,2]}" | parseJSON }}{{ index .a 1 }}{{ end }}{{ "x" | regexReplaceAll "(" "" }}`,
		`{{ "ab" | regexMatch "a+" }}{{ "s" | sha256Hex | trimPrefix "a" | trimSuffix "b" | toTitle }}`,
		`{{ scratch.Set "a" 1 }}{{ scratch.MapSet "m" "k" (add 1 2.5) }}{{ scratch.MapValues "m" | toJSON }}`,
		`{{ divide 0 (parseInt "7") }}{{ modulo 2 (parseUint "9") }}{{ maximum 1 -2.5 }}{{ range loop 3 }}{{ . }}{{ end }}`,
		`{{ define "d" }}{{ . | toUnescapedJSON }}{{ end }}{{ executeTemplate "d" (parseYAML "a: [1, b]") }}`,
		`{{ sprig_dict "a" 1 | toTOML }}{{ sprig_list 1 "x" | containsAny (sprig_list "x") }}{{ explodeMap (sprig_dict "a/b" 1) }}`,
		`{{ $s := secret "kv/a" }}{{ if secret "kv/b" }}{{ secret "kv/c" }}{{ else }}{{ secret "kv/d" }}{{ end }}{{ secret "kv/e" | toJSON }}`,
	} {
		f.Add(s)
	}
	bigNumber := regexp.MustCompile(`[0-9]{3,}`)
	f.Fuzz(func(t *testing.T, text string) {
		if bigNumber.MatchString(text) && (strings.Contains(text, "range") || strings.Contains(text, "sprig_") || strings.Contains(text, "loop")) {
			// Outside the target's domain: `range N`/`loop N` with a large N and an empty body,
			// or sprig's repeat/until/seq/randBytes with a large count, run or allocate as much as
			// the template's author asked (output is capped, CPU and the allocation before it
			// are not).
			return
		}
		if strings.Contains(text, "genPrivateKey") || strings.Contains(text, "genCA") || strings.Contains(text, "genSelfSigned") || strings.Contains(text, "genSigned") || strings.Contains(text, "bcrypt") || strings.Contains(text, "htpasswd") {
			return // slow by design (key generation, bcrypt), not a rendering fault
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		read := map[string]bool{}
		_, err := render(ctx, tmpl{name: "fuzz", text: text}, func(ctx context.Context, path string, data map[string]any) (*Secret, error) {
			if data == nil {
				read[path] = true
			}
			return fixedFetch(ctx, path, data)
		})
		// What prefetch reads ahead must be what a successful render reads.
		for _, p := range sureReads("fuzz", text) {
			if err == nil && !read[p] {
				t.Errorf("sureReads names %q, which the render did not read", p)
			}
		}
	})
}

func writeTestFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }

func TestMainFlagErrors(t *testing.T) {
	t.Setenv("VAULT_INJECTOR_RETRY_BUDGET", "soon")
	var stderr strings.Builder
	if code := Main(context.Background(), []string{"--config", "/nonexistent"}, io.Discard, &stderr); code != 2 {
		t.Fatalf("exit %d, want 2 for a bad environment value", code)
	}
	if !strings.Contains(stderr.String(), `VAULT_INJECTOR_RETRY_BUDGET="soon"`) {
		t.Errorf("stderr %q does not name the variable", stderr.String())
	}
}
