package agent

import (
	"bytes"
	"os"
	"path/filepath"
)

// writeFile replaces dir/rel atomically (temp file in the same directory, then rename) when its
// content or mode differ, and reports whether it wrote. The temp file lives beside the target:
// the root filesystem is read-only and a rename cannot cross volumes.
func writeFile(dir, rel string, content []byte, perms os.FileMode) (bool, error) {
	path := filepath.Join(dir, rel)
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, content) {
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm() == perms {
			return false, nil
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false, err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return false, err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(content); err != nil {
		f.Close()
		return false, err
	}
	if err := f.Chmod(perms); err != nil {
		f.Close()
		return false, err
	}
	if err := f.Close(); err != nil {
		return false, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return false, err
	}
	return true, nil
}
