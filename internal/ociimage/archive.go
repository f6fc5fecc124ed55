package ociimage

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// WriteArchive writes the OCI image layout in dir as one tar file at out (an "oci-archive"):
// the single file a release ships, which `ctr images import`, `skopeo copy oci-archive:`,
// `podman load` and `docker load` (25 and later) read. Entries are sorted and carry no time,
// owner or mode of this machine, so the same layout gives the same bytes.
func WriteArchive(dir, out string) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(out), ".oci-archive-*")
	if err != nil {
		return fmt.Errorf("archive %s: %w", out, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	tw := tar.NewWriter(tmp)
	walkErr := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: rel + "/", Mode: 0o755, ModTime: epoch})
		case d.Type().IsRegular():
			return appendFile(tw, path, rel)
		default:
			return fmt.Errorf("%s: neither a file nor a directory", path)
		}
	})
	if walkErr != nil {
		return fmt.Errorf("archive %s: %w", dir, walkErr)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("archive %s: %w", out, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("archive %s: %w", out, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("archive %s: %w", out, err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return fmt.Errorf("archive %s: %w", out, err)
	}
	return nil
}

func appendFile(tw *tar.Writer, path, name string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: fi.Size(), Mode: 0o644, ModTime: epoch}); err != nil {
		return err
	}
	if _, err := io.Copy(tw, f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// RemoveLayout removes dir if it is an OCI image layout, so a build can replace its previous
// output; it refuses any other existing directory rather than delete what it did not write.
func RemoveLayout(dir string) error {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		return fmt.Errorf("%s exists and is not an OCI image layout: not removing it", dir)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove the previous layout: %w", err)
	}
	return nil
}
