package ociimage

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriteArchive: the archive holds exactly the layout's files, byte for byte, with no trace
// of this machine (the same layout gives the same archive).
func TestWriteArchive(t *testing.T) {
	dir, _ := productIndex(t, tinyBinaries(t))
	want := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		rel, _ := filepath.Rel(dir, path)
		want[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"oci-layout", "index.json"} {
		if _, ok := want[f]; !ok {
			t.Fatalf("the layout has no %s", f)
		}
	}
	out := t.TempDir()
	first, second := filepath.Join(out, "a.tar"), filepath.Join(out, "b.tar")
	for _, p := range []string{first, second} {
		if err := WriteArchive(dir, p); err != nil {
			t.Fatal(err)
		}
	}
	a, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(second)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("two archives of the same layout differ")
	}
	tr := tar.NewReader(bytes.NewReader(a))
	got := map[string][]byte{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Uid != 0 || hdr.Gid != 0 || !hdr.ModTime.Equal(epoch) {
			t.Errorf("%s: owner %d:%d, time %v: want 0:0 at the epoch", hdr.Name, hdr.Uid, hdr.Gid, hdr.ModTime)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		if got[hdr.Name], err = io.ReadAll(tr); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != len(want) {
		t.Errorf("the archive holds %d files, the layout %d", len(got), len(want))
	}
	for name, w := range want {
		if !bytes.Equal(got[name], w) {
			t.Errorf("%s differs between the archive and the layout", name)
		}
	}
}

// TestRemoveLayout: a previous layout is replaced, any other directory is left alone.
func TestRemoveLayout(t *testing.T) {
	for _, tc := range []struct {
		name    string
		file    string // written in the directory; empty: no directory
		wantErr string
	}{
		{"missing", "", ""},
		{"previous layout", "oci-layout", ""},
		{"something else", "notes.txt", "is not an OCI image layout: not removing it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "oci")
			if tc.file != "" {
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, tc.file), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			err := RemoveLayout(dir)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want it to contain %q", err, tc.wantErr)
				}
				if _, err := os.Stat(filepath.Join(dir, tc.file)); err != nil {
					t.Fatalf("a refused directory lost its file: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("%s still there: %v", dir, err)
			}
		})
	}
}
