// Package switchroot makes a mounted directory the new root and executes
// init there: the last step of stage 1 in the initramfs.
package switchroot

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Moves are the API filesystems carried into the new root.
var Moves = []string{"/dev", "/proc", "/sys", "/run"}

// Switch moves the API mounts into newRoot, empties the initramfs (it is
// RAM the box would otherwise never get back), makes newRoot the root and
// executes init with argv. It only returns on error; by then the
// initramfs may be partly gone, so the caller should reboot.
func Switch(newRoot, init string, argv []string) error {
	if _, err := os.Stat(filepath.Join(newRoot, init)); err != nil {
		return fmt.Errorf("new root has no %s: %w", init, err)
	}
	for _, m := range Moves {
		dst := filepath.Join(newRoot, m)
		if err := unix.Mount(m, dst, "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("moving %s to %s: %w", m, dst, err)
		}
	}
	if err := unix.Chdir(newRoot); err != nil {
		return fmt.Errorf("chdir %s: %w", newRoot, err)
	}
	// Delete before the move: afterwards the old root is unreachable.
	var rootStat unix.Stat_t
	if err := unix.Lstat("/", &rootStat); err == nil {
		deleteTree("/", rootStat.Dev)
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("moving %s to /: %w", newRoot, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot %s: %w", newRoot, err)
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	return unix.Exec(init, argv, os.Environ())
}

// deleteTree removes everything under dir that lives on the filesystem
// dev, not crossing into mounts (the new root among them). Errors are
// ignored: a file left behind costs a little RAM, nothing else.
func deleteTree(dir string, dev uint64) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil || st.Dev != dev {
			continue
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			deleteTree(p, dev)
		}
		_ = os.Remove(p)
	}
}
