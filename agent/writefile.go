package agent

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// writeOutcome is what writeFile did.
type writeOutcome int

const (
	unchanged writeOutcome = iota // same content and mode already there: nothing written
	created                       // there was no file
	replaced                      // an existing file was replaced
)

// writeFile replaces dir/rel atomically (temp file in the same directory, then rename) when its
// content or mode differ, and says whether it created, replaced or left it. The temp file lives
// beside the target: the root filesystem is read-only and a rename cannot cross volumes. It
// runs for every file of the pod's first render, which the app waits for, so it makes no
// system call it can do without: the read of the old content tells whether it exists, and the
// parent directory is made only when rel has one.
func writeFile(dir, rel string, content []byte, perms os.FileMode) (writeOutcome, error) {
	path := filepath.Join(dir, rel)
	outcome := replaced
	old, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		outcome = created
	case err == nil && bytes.Equal(old, content):
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm() == perms {
			return unchanged, nil
		}
	}
	parent := filepath.Dir(path)
	if outcome == created && parent != filepath.Clean(dir) {
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return unchanged, err
		}
	}
	f, err := os.CreateTemp(parent, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return unchanged, err
	}
	tmp := f.Name()
	if err := writeAndClose(f, content, perms); err != nil {
		os.Remove(tmp)
		return unchanged, err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return unchanged, err
	}
	return outcome, nil
}

func writeAndClose(f *os.File, content []byte, perms os.FileMode) error {
	if _, err := f.Write(content); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perms); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
