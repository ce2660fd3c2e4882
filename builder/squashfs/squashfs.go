// Package squashfs writes a file tree as a gzip-compressed, read-only
// squashfs image with go-diskfs, reproducibly: every timestamp, including the one
// go-diskfs stamps into the superblock, is the given epoch and every file
// is owned by root.
package squashfs

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cairn-edge/cairn/builder/fstree"
	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/squashfs"
	"golang.org/x/sys/unix"
)

// superblockTimeOffset is where squashfs keeps mkfs_time (le32 seconds).
const superblockTimeOffset = 8

// Write writes tree as a gzip-compressed squashfs to out (created or
// truncated) and returns its size.
func Write(tree *fstree.Tree, out string, epoch time.Time) (int64, error) {
	f, err := os.OpenFile(out, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fs, err := squashfs.Create(file.New(f, false), 0, 0, 0)
	if err != nil {
		return 0, fmt.Errorf("squashfs: %w", err)
	}
	ws := fs.Workspace()
	defer os.RemoveAll(ws) // Finalize forgets it, so Close would not remove it
	if err := populate(tree, ws, epoch); err != nil {
		return 0, fmt.Errorf("squashfs: staging files: %w", err)
	}
	if err := finalizeIn(ws, fs); err != nil {
		if strings.Contains(err.Error(), "unable to list xattrs") {
			return 0, fmt.Errorf("squashfs: %v: a symlink points at a path that does not exist at build time, which go-diskfs v1.9.4 cannot store (add the target to the image or drop the link)", err)
		}
		return 0, fmt.Errorf("squashfs: %w", err)
	}
	var ts [4]byte
	binary.LittleEndian.PutUint32(ts[:], uint32(epoch.Unix()))
	if _, err := f.WriteAt(ts[:], superblockTimeOffset); err != nil {
		return 0, err
	}
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), f.Close()
}

// finalizeIn runs Finalize with the workspace as the working directory:
// go-diskfs v1.9.4 reads symlink targets by their workspace-relative path.
// The working directory is process-wide, hence the lock.
func finalizeIn(ws string, fs *squashfs.FileSystem) error {
	chdirMu.Lock()
	defer chdirMu.Unlock()
	prev, err := os.Getwd()
	if err != nil {
		return err
	}
	if err := os.Chdir(ws); err != nil {
		return err
	}
	defer os.Chdir(prev)
	root := uint32(0)
	// gzip, not zstd or xz: go-diskfs v1.9.4 writes zstd frames with an 8 MiB
	// window and xz streams with CRC64, and Linux's squashfs decompressors
	// (128 KiB window, CRC32) reject both at mount time.
	return fs.Finalize(squashfs.FinalizeOptions{
		Compression: &squashfs.CompressorGzip{CompressionLevel: 9},
		FileUID:     &root,
		FileGID:     &root,
	})
}

var chdirMu sync.Mutex

// populate lays the tree out in the workspace directory go-diskfs reads.
func populate(tree *fstree.Tree, ws string, epoch time.Time) error {
	entries := tree.Entries()
	for _, e := range entries {
		dst := filepath.Join(ws, filepath.FromSlash(e.Path))
		switch {
		case e.Mode.IsDir():
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
		case e.Mode&os.ModeSymlink != 0:
			if err := os.Symlink(e.Target, dst); err != nil {
				return err
			}
		default:
			if err := copyFile(e, dst); err != nil {
				return err
			}
		}
	}
	// Modes and times last, children before parents, since writing into a
	// directory changes its mtime.
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		dst := filepath.Join(ws, filepath.FromSlash(e.Path))
		if e.Mode&os.ModeSymlink == 0 {
			if err := os.Chmod(dst, e.Mode.Perm()); err != nil {
				return err
			}
		}
		if err := lutimes(dst, epoch); err != nil {
			return err
		}
	}
	if err := os.Chmod(ws, 0o755); err != nil { // the workspace is a 0700 temp dir
		return err
	}
	return lutimes(ws, epoch)
}

func copyFile(e *fstree.Entry, dst string) error {
	src, err := e.Open()
	if err != nil {
		return err
	}
	defer src.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, src); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func lutimes(p string, t time.Time) error {
	ts := []unix.Timespec{unix.NsecToTimespec(t.UnixNano()), unix.NsecToTimespec(t.UnixNano())}
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
}
