package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWaitCreatedSeesTheNamedFileOnly(t *testing.T) {
	dir, watch := watchedDir(t)
	// Another file first, then the marker written as the agent writes its state (a rename).
	touch(t, filepath.Join(dir, "other"))
	touch(t, filepath.Join(dir, ".tmp"))
	if err := os.Rename(filepath.Join(dir, ".tmp"), filepath.Join(dir, "ready")); err != nil {
		t.Fatal(err)
	}
	if err := waitCreated(watch, "ready", time.Now().Add(5*time.Second)); err != nil {
		t.Fatalf("ready not seen: %v", err)
	}
}

func TestWaitCreatedGivesUpAtTheDeadline(t *testing.T) {
	dir, watch := watchedDir(t)
	touch(t, filepath.Join(dir, "other"))
	start := time.Now()
	if err := waitCreated(watch, "ready", start.Add(200*time.Millisecond)); err == nil {
		t.Fatal("a file called other was taken for ready")
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("waited %s past a 200ms deadline", waited)
	}
}

func watchedDir(t *testing.T) (string, *os.File) {
	t.Helper()
	dir := t.TempDir()
	watch, err := watchCreations(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { watch.Close() })
	return dir, watch
}

func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}
