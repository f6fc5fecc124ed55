package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// writeChecksums writes SHA256SUMS for the release's files in the format of sha256sum, so
// `sha256sum -c SHA256SUMS` (or `shasum -a 256 -c` on macOS) verifies a download.
func writeChecksums(dir string) error {
	entries, err := os.ReadDir(dir) // sorted by name
	if err != nil {
		return fmt.Errorf("checksums: %w", err)
	}
	var buf bytes.Buffer
	for _, e := range entries {
		if !isTopLevelFile(e) {
			continue
		}
		sum, err := fileSHA256(filepath.Join(dir, e.Name()))
		if err != nil {
			return fmt.Errorf("checksums: %w", err)
		}
		fmt.Fprintf(&buf, "%s  %s\n", sum, e.Name())
	}
	if err := os.WriteFile(filepath.Join(dir, checksumsName), buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("checksums: %w", err)
	}
	return nil
}

// parseChecksums reads a SHA256SUMS file into file name -> hex digest.
func parseChecksums(r io.Reader) (map[string]string, error) {
	sums := map[string]string{}
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if _, err := hex.DecodeString(sum); !ok || err != nil || len(sum) != sha256.Size*2 || name == "" {
			return nil, fmt.Errorf("line %d: %q is not <sha256>  <file>", line, sc.Text())
		}
		if _, dup := sums[name]; dup {
			return nil, fmt.Errorf("line %d: %s listed twice", line, name)
		}
		sums[name] = sum
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return sums, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
