package certs

import (
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeVolume lays out a Secret volume the way the kubelet does: the files live in a
// timestamped directory, ..data points at it, and tls.crt/tls.key are symlinks through ..data.
// An update writes a new directory and swaps ..data atomically.
func writeVolume(t *testing.T, dir, version string, cert, key []byte) {
	t.Helper()
	ts := filepath.Join(dir, "..v"+version)
	if err := os.MkdirAll(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"tls.crt": cert, "tls.key": key} {
		if err := os.WriteFile(filepath.Join(ts, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				t.Fatal(err)
			}
		}
	}
	tmp := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink("..v"+version, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

func TestFileSourceFollowsSecretVolumeUpdates(t *testing.T) {
	old := PollInterval
	PollInterval = 20 * time.Millisecond
	t.Cleanup(func() { PollInterval = old })
	now := time.Now()
	ca, err := newCA(now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf := func() *keyPair {
		kp, err := newLeaf(ca, now, 30*time.Minute, []string{"vault-injector.vault-injector.svc"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return kp
	}
	first, second := leaf(), leaf()
	dir := t.TempDir()
	writeVolume(t, dir, "1", first.certPEM, first.keyPEM)
	logs := &logBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	src, err := NewFileSource(ctx, filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), slogTo(logs))
	if err != nil {
		t.Fatal(err)
	}
	serving := func() *x509.Certificate {
		c, err := src.GetCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf
	}
	if !serving().Equal(first.cert) {
		t.Fatal("not serving the mounted certificate")
	}

	// A renewal (cert-manager writes the Secret, the kubelet swaps ..data).
	writeVolume(t, dir, "2", second.certPEM, second.keyPEM)
	waitFor(t, func() bool { return serving().Equal(second.cert) }, "the renewed certificate to be served")

	// A broken update (key not matching) is refused; the last good pair stays.
	writeVolume(t, dir, "3", first.certPEM, second.keyPEM)
	waitFor(t, func() bool { return strings.Contains(logs.String(), "keeping the previous one") }, "the bad pair to be reported")
	if !serving().Equal(second.cert) {
		t.Error("a mismatched pair replaced the good certificate")
	}
	if strings.Contains(logs.String(), "PRIVATE KEY") {
		t.Error("key material in the log")
	}
}

func TestFileSourceFailsClearlyAtStart(t *testing.T) {
	dir := t.TempDir()
	_, err := NewFileSource(context.Background(), filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), nil)
	if err == nil || !strings.Contains(err.Error(), "tls.crt") {
		t.Fatalf("error %v, want one naming the missing file", err)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
