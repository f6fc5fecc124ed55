package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/vault-injector/vault-injector/internal/ociimage"
)

// The names of a release's files; release_test.go reads them back with the same functions.

func binaryName(version string, p ociimage.Platform) string {
	return fmt.Sprintf("vault-injector-%s-%s-%s", version, p.OS, p.Arch)
}

func imageLayoutName(version string) string  { return "vault-injector-image-" + version }
func imageArchiveName(version string) string { return imageLayoutName(version) + ".oci.tar" }

// chartName is what `helm package` writes: <chart name>-<version>.tgz.
func chartName(version string) string { return "vault-injector-" + version + ".tgz" }

const checksumsName = "SHA256SUMS"

// cleanOut empties out when it holds a previous release (it has SHA256SUMS) or nothing, and
// refuses any other directory rather than delete files it did not write.
func cleanOut(out string) error {
	entries, err := os.ReadDir(out)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return os.MkdirAll(out, 0o755)
	case err != nil:
		return fmt.Errorf("release directory: %w", err)
	case len(entries) == 0:
		return nil
	}
	if _, err := os.Stat(filepath.Join(out, checksumsName)); err != nil {
		return fmt.Errorf("%s holds files but no %s, so no previous release: not deleting it", out, checksumsName)
	}
	if err := os.RemoveAll(out); err != nil {
		return fmt.Errorf("remove the previous release: %w", err)
	}
	return os.MkdirAll(out, 0o755)
}

// copyBinaries puts each platform's CLI binary in the release under its versioned name.
func copyBinaries(o options) error {
	for p, bin := range o.binaries {
		if err := copyFile(bin, filepath.Join(o.out, binaryName(o.version, p)), 0o755); err != nil {
			return fmt.Errorf("binary for %s: %w", p, err)
		}
	}
	return nil
}

// writeImage writes the image of the Linux binaries as an OCI layout and its archive.
func writeImage(o options) error {
	linux := map[ociimage.Platform]string{}
	for p, bin := range o.binaries {
		if p.OS == "linux" {
			linux[p] = bin
		}
	}
	if len(linux) == 0 {
		return fmt.Errorf("no linux --binary: the image needs at least one")
	}
	dir := filepath.Join(o.out, imageLayoutName(o.version))
	if _, err := ociimage.WriteIndex(dir, o.tag, ociimage.ProductImages(o.tag, linux)); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	if err := ociimage.WriteArchive(dir, filepath.Join(o.out, imageArchiveName(o.version))); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}

// isTopLevelFile reports whether name is a file SHA256SUMS lists: every regular file at the top
// of the release, except SHA256SUMS itself (the image layout directory is content-addressed).
func isTopLevelFile(e fs.DirEntry) bool {
	return e.Type().IsRegular() && e.Name() != checksumsName && !strings.HasPrefix(e.Name(), ".")
}
