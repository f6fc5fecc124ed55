// Package certs owns the webhook's serving certificate: self-managed (SelfManaged: a CA and a
// serving certificate generated, shared by replicas through a Secret, rotated, and published as
// the caBundle of our MutatingWebhookConfiguration), or loaded from files (FileSource:
// cert-manager or any mounted Secret) and reloaded when they change. Both are a Source, asked
// on every TLS handshake, so new certificates are served without a restart.
package certs

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// FileSource serves the key pair found in two files and reloads it when they change. Kubernetes
// updates Secret volumes by swapping a ..data symlink, so the files are polled by content
// identity (size and modification time of their targets) rather than watched by inode; a pair
// that fails to load (for example a half-written update) is logged and the last good one kept.
type FileSource struct {
	certFile, keyFile string
	log               *slog.Logger

	mu   sync.RWMutex
	cert *tls.Certificate
	seen string
}

// PollInterval is how often FileSource looks for new files.
var PollInterval = 2 * time.Second

// NewFileSource loads the pair once (failing if it cannot) and keeps reloading until ctx ends.
func NewFileSource(ctx context.Context, certFile, keyFile string, log *slog.Logger) (*FileSource, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &FileSource{certFile: certFile, keyFile: keyFile, log: log}
	if err := s.reload(); err != nil {
		return nil, err
	}
	go func() {
		t := time.NewTicker(PollInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := s.reload(); err != nil {
					s.log.Warn("serving certificate not reloaded; keeping the previous one", "error", err.Error())
				}
			}
		}
	}()
	return s, nil
}

// GetCertificate implements tls.Config.GetCertificate.
func (s *FileSource) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cert, nil
}

func (s *FileSource) reload() error {
	id, err := identity(s.certFile, s.keyFile)
	if err != nil {
		return err
	}
	s.mu.RLock()
	same := id == s.seen
	s.mu.RUnlock()
	if same {
		return nil
	}
	pair, err := tls.LoadX509KeyPair(s.certFile, s.keyFile)
	if err != nil {
		return fmt.Errorf("load serving certificate %s / %s: %w", s.certFile, s.keyFile, err)
	}
	s.mu.Lock()
	first := s.cert == nil
	s.cert, s.seen = &pair, id
	s.mu.Unlock()
	if !first {
		s.log.Info("serving certificate reloaded", "cert", s.certFile, "not_after", pair.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// identity summarises both files (following symlinks) so a change of either is noticed.
func identity(files ...string) (string, error) {
	id := ""
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			return "", fmt.Errorf("serving certificate: %w", err)
		}
		id += fmt.Sprintf("%s:%d:%d;", f, fi.Size(), fi.ModTime().UnixNano())
	}
	return id, nil
}
