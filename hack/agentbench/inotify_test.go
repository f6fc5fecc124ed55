package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWaitCreatedSeesTheNamedFileOnly(t *testing.T) {
	dir := t.TempDir()
	watch, err := watchCreations(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { watch.Close() })
	// Another file first, then the marker written as the agent writes its state (a rename).
	if err := os.WriteFile(filepath.Join(dir, "other"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".tmp"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, ".tmp"), filepath.Join(dir, "ready")); err != nil {
		t.Fatal(err)
	}
	if err := waitCreated(watch, "ready", time.Now().Add(5*time.Second)); err != nil {
		t.Fatalf("ready not seen: %v", err)
	}
}

func TestWaitCreatedGivesUpAtTheDeadline(t *testing.T) {
	dir := t.TempDir()
	watch, err := watchCreations(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { watch.Close() })
	if err := os.WriteFile(filepath.Join(dir, "other"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := waitCreated(watch, "ready", start.Add(200*time.Millisecond)); err == nil {
		t.Fatal("a file called other was taken for ready")
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("waited %s past a 200ms deadline", waited)
	}
}
