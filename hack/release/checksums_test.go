package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestChecksumsRoundTrip: SHA256SUMS lists every top-level file but itself, in the format
// sha256sum -c reads, and parseChecksums reads it back.
func TestChecksumsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{"a-binary": "abc", "chart.tgz": "", ".hidden": "x"}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "layout"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeChecksums(dir); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, checksumsName))
	if err != nil {
		t.Fatal(err)
	}
	// Digests of "abc" and "" (FIPS 180-2 examples), in name order.
	want := "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  a-binary\n" +
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  chart.tgz\n"
	if string(raw) != want {
		t.Fatalf("%s:\n%s\nwant:\n%s", checksumsName, raw, want)
	}
	sums, err := parseChecksums(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	if len(sums) != 2 || sums["a-binary"] != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("parsed %v", sums)
	}
}

func TestParseChecksumsRejects(t *testing.T) {
	const sum = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	for _, tc := range []struct{ name, in, wantErr string }{
		{"one space", sum + " f\n", "is not <sha256>  <file>"},
		{"short digest", sum[:10] + "  f\n", "is not <sha256>  <file>"},
		{"not hex", strings.Repeat("z", 64) + "  f\n", "is not <sha256>  <file>"},
		{"no name", sum + "  \n", "is not <sha256>  <file>"},
		{"listed twice", sum + "  f\n" + sum + "  f\n", "line 2: f listed twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseChecksums(strings.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

// TestCleanOut: a previous release is replaced, an unrelated directory is left alone.
func TestCleanOut(t *testing.T) {
	for _, tc := range []struct {
		name    string
		files   []string
		wantErr string
	}{
		{"missing", nil, ""},
		{"empty", []string{}, ""},
		{"previous release", []string{checksumsName, "vault-injector-0.0.9-linux-amd64"}, ""},
		{"something else", []string{"notes.txt"}, "no previous release: not deleting it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "release")
			if tc.files != nil {
				if err := os.Mkdir(out, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for _, f := range tc.files {
				if err := os.WriteFile(filepath.Join(out, f), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			err := cleanOut(out)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want it to contain %q", err, tc.wantErr)
				}
				if _, err := os.Stat(filepath.Join(out, tc.files[0])); err != nil {
					t.Fatalf("a refused directory lost its files: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			entries, err := os.ReadDir(out)
			if err != nil || len(entries) != 0 {
				t.Fatalf("after cleanOut: %v entries, %v; want an empty directory", len(entries), err)
			}
		})
	}
}
