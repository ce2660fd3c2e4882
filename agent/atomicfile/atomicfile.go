// Package atomicfile replaces files so that a reader, or a box that loses
// power, sees the old content or the new, never a part: write a temporary
// file next to the target, sync it, rename it over the target, sync the
// directory.
package atomicfile

import (
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// WriteFile replaces path with data and mode perm, creating its directory.
// A file that already holds data with that mode is left alone: what a
// service rewrites at every start (kubeconfigs, certificates) costs no
// write, and no window, when nothing changed.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	if same(path, data, perm) {
		return nil
	}
	return Write(path, bytes.NewReader(data), perm)
}

// same reports whether path is a regular file holding data, with mode
// perm (any mode when perm is 0).
func same(path string, data []byte, perm fs.FileMode) bool {
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != int64(len(data)) || (perm != 0 && fi.Mode().Perm() != perm) {
		return false
	}
	old, err := os.ReadFile(path)
	return err == nil && bytes.Equal(old, data)
}

// Write replaces path with what r holds and mode perm, creating its
// directory. The temporary file is named "."+base+".*", so loaders that skip
// dot files (systemd-boot) never see a part. perm 0 leaves a new file's
// mode alone: vfat has no modes and refuses most chmods.
func Write(path string, r io.Reader, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // fails harmlessly after the rename
	if perm != 0 {
		if err := f.Chmod(perm); err != nil {
			f.Close()
			return err
		}
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// SyncDir makes a directory's changes (a rename, a removal) durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
