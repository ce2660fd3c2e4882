package bootloader

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cairn-edge/cairn/agent/atomicfile"
)

// FS is the boot media as a boot loader implementation sees it: a few
// whole-file operations on slash-separated paths relative to its root
// (io/fs valid paths, as "loader/entries/x.conf").
//
// There is no rename: the boot media are FAT, where a rename is not atomic
// (a cut may leave both names, or neither). Implementations write a new file
// before they remove the old one instead, so that each single mutation,
// lost or done, leaves a bootable state.
type FS interface {
	// ReadDir lists the names of the regular files in dir, sorted, leaving
	// out dot files (another writer's temporary files). A missing dir lists
	// as empty: a fresh ESP has no entries yet.
	ReadDir(dir string) ([]string, error)
	// ReadFile returns name's content; a missing file's error matches
	// fs.ErrNotExist.
	ReadFile(name string) ([]byte, error)
	// WriteFile replaces name with what r holds, creating its directory.
	// When it returns, the content is durable; if the power is cut before,
	// name holds the old content (or is missing, if it was) or the new,
	// never a part.
	WriteFile(name string, r io.Reader) error
	// Remove removes name durably; a missing file is not an error.
	Remove(name string) error
}

// Overwriter overwrites a file in place: the one mutation on FAT that a
// power cut leaves old or new without a rename, as long as the content
// fits one sector (the Raspberry Pi's autoboot.txt, which the firmware
// reads by its exact name, so that no temporary file and rename can
// replace it).
type Overwriter interface {
	// Overwrite writes data over name's content from offset 0 and makes it
	// durable. name must exist and hold exactly len(data) bytes: a size
	// change would rewrite the directory entry and perhaps the FAT, which
	// a cut can leave half done, so it is refused.
	Overwrite(name string, data []byte) error
}

func checkPath(op, name string) error {
	if !fs.ValidPath(name) || name == "." {
		return fmt.Errorf("%s %q: not a relative slash-separated path (a bug in the caller)", op, name)
	}
	return nil
}

// Opener is implemented by an FS that can stream a file rather than read
// it whole (DirFS): a 30 MiB kernel read back for an upgrade is not held
// in memory.
type Opener interface {
	// Open opens name for reading; a missing file's error matches
	// fs.ErrNotExist.
	Open(name string) (io.ReadCloser, error)
}

// DirFS is an FS on a mounted directory, the ESP at /boot on the node.
// WriteFile writes a dot-named temporary file, syncs it, renames it over the
// target and syncs the directory, so systemd-boot (which skips dot files)
// never reads a part.
type DirFS string

func (d DirFS) join(op, name string) (string, error) {
	if err := checkPath(op, name); err != nil {
		return "", err
	}
	return filepath.Join(string(d), filepath.FromSlash(name)), nil
}

// ReadDir implements FS.
func (d DirFS) ReadDir(dir string) ([]string, error) {
	p, err := d.join("read dir", dir)
	if err != nil {
		return nil, err
	}
	des, err := os.ReadDir(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, de := range des {
		if de.Type().IsRegular() && !strings.HasPrefix(de.Name(), ".") {
			names = append(names, de.Name())
		}
	}
	return names, nil
}

// ReadFile implements FS.
func (d DirFS) ReadFile(name string) ([]byte, error) {
	p, err := d.join("read", name)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(p)
}

// Open implements Opener.
func (d DirFS) Open(name string) (io.ReadCloser, error) {
	p, err := d.join("open", name)
	if err != nil {
		return nil, err
	}
	return os.Open(p)
}

// WriteFile implements FS.
func (d DirFS) WriteFile(name string, r io.Reader) error {
	p, err := d.join("write", name)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(p, r, 0); err != nil {
		return fmt.Errorf("writing %s: %w (is the ESP mounted read-write, with space left?)", p, err)
	}
	return d.syncFS()
}

// syncFS writes out everything of the file system under d. vfat's fsync
// of a file and of its directory does not make every FAT change durable:
// a power cut after an fsynced write and rename, with no sync since, was
// seen to leave an ESP the firmware's FAT driver could not read loader/
// on. syncfs(2) writes the FAT, the directories and FSInfo, as a clean
// shutdown's sync does.
func (d DirFS) syncFS() error {
	f, err := os.Open(string(d))
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("syncing %s: %w", string(d), err)
	}
	return nil
}

// Remove implements FS.
func (d DirFS) Remove(name string) error {
	p, err := d.join("remove", name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	if err := atomicfile.SyncDir(filepath.Dir(p)); err != nil {
		return err
	}
	return d.syncFS()
}

// Overwrite implements Overwriter: it opens name write-only without
// truncating it, checks its size, writes data at offset 0 with one
// pwrite(2), fsyncs it and syncs the file system. On vfat only the data
// sectors written change, and the directory entry's modification time.
func (d DirFS) Overwrite(name string, data []byte) error {
	p, err := d.join("overwrite", name)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("overwriting %s: %w", p, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("overwriting %s: %w", p, err)
	}
	if !fi.Mode().IsRegular() || fi.Size() != int64(len(data)) {
		return fmt.Errorf("overwriting %s: it holds %d bytes, the new content %d; an overwrite in place keeps the size (a bug in the caller, or the file was replaced by hand)", p, fi.Size(), len(data))
	}
	if n, err := f.WriteAt(data, 0); err != nil || n != len(data) {
		return fmt.Errorf("overwriting %s: wrote %d of %d bytes: %v", p, n, len(data), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", p, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("overwriting %s: %w", p, err)
	}
	return d.syncFS()
}

// MemFS is an FS in memory: the builder fills one and copies it into the
// image's ESP with Walk. Its zero value is empty and ready.
type MemFS struct {
	files map[string][]byte
}

// ReadDir implements FS.
func (m *MemFS) ReadDir(dir string) ([]string, error) {
	if err := checkPath("read dir", dir); err != nil {
		return nil, err
	}
	var names []string
	for name := range m.files {
		if d, base := path.Split(name); d == dir+"/" && !strings.HasPrefix(base, ".") {
			names = append(names, base)
		}
	}
	sort.Strings(names)
	return names, nil
}

// ReadFile implements FS.
func (m *MemFS) ReadFile(name string) ([]byte, error) {
	if err := checkPath("read", name); err != nil {
		return nil, err
	}
	b, ok := m.files[name]
	if !ok {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrNotExist}
	}
	return bytes.Clone(b), nil
}

// WriteFile implements FS.
func (m *MemFS) WriteFile(name string, r io.Reader) error {
	if err := checkPath("write", name); err != nil {
		return err
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if m.files == nil {
		m.files = map[string][]byte{}
	}
	m.files[name] = b
	return nil
}

// Remove implements FS.
func (m *MemFS) Remove(name string) error {
	if err := checkPath("remove", name); err != nil {
		return err
	}
	delete(m.files, name)
	return nil
}

// Overwrite implements Overwriter.
func (m *MemFS) Overwrite(name string, data []byte) error {
	if err := checkPath("overwrite", name); err != nil {
		return err
	}
	old, ok := m.files[name]
	if !ok {
		return &fs.PathError{Op: "overwrite", Path: name, Err: fs.ErrNotExist}
	}
	if len(old) != len(data) {
		return fmt.Errorf("overwriting %s: it holds %d bytes, the new content %d; an overwrite in place keeps the size", name, len(old), len(data))
	}
	m.files[name] = bytes.Clone(data)
	return nil
}

// Walk calls fn for every file, in sorted path order, so that what the
// builder copies out is the same on every build; it stops at fn's first
// error.
func (m *MemFS) Walk(fn func(name string, data []byte) error) error {
	names := make([]string, 0, len(m.files))
	for name := range m.files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := fn(name, m.files[name]); err != nil {
			return err
		}
	}
	return nil
}
