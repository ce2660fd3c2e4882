// Package untar unpacks the tar stream of a root file system (an input
// image's flattened layers) into a directory of the build host, and writes
// nothing outside it, whatever the stream holds. The builder runs as root
// and its inputs come from registries, so a stream is untrusted:
//
//	rc := mutate.Extract(img) // whiteouts applied, upper layers first
//	defer rc.Close()
//	if err := untar.Extract(rc, dir); err != nil { … }
//
// The rules, each error naming the entry that broke one:
//   - Names are relative to dir: a leading "/" means dir, as in OCI layers;
//     a name whose ".." climbs out of dir is refused.
//   - Nothing is written through a symlink: a name with a symlink among its
//     directories is refused, even one pointing inside the tree; an entry
//     over an existing file or symlink replaces it, never writes into it.
//   - Symlinks are stored as they are, absolute targets too: the tree is a
//     root file system, its links mean something on the node, and nothing
//     here follows them.
//   - A hard link must name a regular file of the tree through real
//     directories. Links are made after every other entry, because a
//     flattened image lists upper layers first: a link can come before its
//     target.
//   - Device nodes, fifos and other types are skipped, as they always were:
//     the build host gets none, and the node's /dev is devtmpfs.
//   - Permission bits are kept as created under the umask; setuid, setgid,
//     sticky bits, owners and times are not (the cache holds no setuid root
//     program, and the image's owners and times are fixed later).
//   - Sizes and the number of entries are capped by Limits, the length
//     and depth of paths by what Linux and real file systems need.
//
// Whiteouts are not handled here: the stream is a file system already
// flattened, as go-containerregistry's mutate.Extract gives it.
package untar

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// The default caps, sized for the inputs a build unpacks (kernel, boot
// loader, Kubernetes tools) with room to spare.
const (
	// MaxFileSize caps one regular file: a kernel is tens of MiB, a
	// kubelet about a hundred.
	MaxFileSize int64 = 2 << 30
	// MaxTotalSize caps the regular files of one input together.
	MaxTotalSize int64 = 8 << 30
	// MaxEntries caps one input's entries of any type, with the
	// directories their paths imply: a whole distribution holds some
	// 100,000, and a stream of empty files compresses to nearly nothing.
	MaxEntries = 1 << 20
)

// Paths are bounded, because each directory is checked component by
// component, so the cost of an entry grows with its depth squared.
const (
	// maxPath is the longest path Linux takes (PATH_MAX, with its NUL).
	maxPath = 4096
	// maxDepth is how deep a path may nest: real root file systems stay
	// below 50.
	maxDepth = 128
)

// Limits caps what one stream may unpack to, so that a broken or hostile
// input cannot fill the build host.
type Limits struct {
	// File is how many bytes one regular file may hold.
	File int64
	// Total is how many bytes the regular files may hold together.
	Total int64
	// Entries is how many entries, of any type, the stream may have,
	// counting the directories their paths imply.
	Entries int
}

// Defaults are the limits Extract applies. The zero Limits allows nothing.
var Defaults = Limits{File: MaxFileSize, Total: MaxTotalSize, Entries: MaxEntries}

// capFix is what an error about the cap named constant tells the user to do.
func capFix(constant string) string {
	return "the cap keeps a broken or hostile input from filling the build host: check that the input is the image you meant; if it really is this big, raise untar." + constant
}

// Extract unpacks the tar stream r into the directory dir under Defaults.
func Extract(r io.Reader, dir string) error { return Defaults.Extract(r, dir) }

// Extract unpacks the tar stream r into the directory dir, refusing (and
// stopping at) the first entry that breaks the package's rules or l. What
// it unpacked before stays in dir: the caller unpacks into a fresh
// directory and removes it on error.
func (l Limits) Extract(r io.Reader, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	x := &extractor{root: root, lim: l, dirs: map[string]bool{".": true}}
	tr := tar.NewReader(r)
	last := ""
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if last == "" {
				return fmt.Errorf("reading the stream: %w (is it a tar?)", err)
			}
			return fmt.Errorf("reading the stream after entry %q: %w", last, err)
		}
		last = h.Name
		if err := x.entry(h, tr); err != nil {
			return fmt.Errorf("entry %q: %w", h.Name, err)
		}
	}
	for _, h := range x.links {
		if err := x.link(h); err != nil {
			return fmt.Errorf("entry %q: %w", h.Name, err)
		}
	}
	return nil
}

// extractor is one Extract's state.
type extractor struct {
	root *os.Root
	lim  Limits
	// dirs are the tree's paths known to be real directories, checked or
	// made; whatever replaces one removes it.
	dirs map[string]bool
	// links are the hard links, made after everything else.
	links   []*tar.Header
	total   int64
	entries int
}

// entry unpacks one entry whose data r holds.
func (x *extractor) entry(h *tar.Header, r io.Reader) error {
	if err := x.count(); err != nil {
		return err
	}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink:
	default:
		return nil // devices, fifos, …: see the package doc
	}
	if n := max(len(h.Name), len(h.Linkname)); n >= maxPath {
		return fmt.Errorf("its name or link target is %d bytes long; Linux takes paths of less than %d", n, maxPath)
	}
	rel, ok := clean(h.Name)
	if !ok {
		return errors.New(`its path climbs out of the tree with ".."`)
	}
	if n := strings.Count(rel, "/") + 1; n > maxDepth {
		return fmt.Errorf("its path is %d levels deep, more than the %d an input may nest", n, maxDepth)
	}
	if rel == "." {
		return nil
	}
	if h.Typeflag == tar.TypeLink {
		x.links = append(x.links, h)
		return nil
	}
	if err := x.dir(path.Dir(rel), true, "its path", writeRule); err != nil {
		return err
	}
	perm := fs.FileMode(h.Mode) & fs.ModePerm
	switch h.Typeflag {
	case tar.TypeDir:
		return x.mkdir(rel, perm)
	case tar.TypeSymlink:
		if err := x.clear(rel); err != nil {
			return err
		}
		return x.root.Symlink(h.Linkname, rel)
	}
	return x.file(rel, perm, h.Size, r)
}

// count counts an entry, or a directory made for one, against the cap.
func (x *extractor) count() error {
	if x.entries++; x.entries > x.lim.Entries {
		return fmt.Errorf("the input has more than %d entries (with the directories they imply), what one input may hold (%s)", x.lim.Entries, capFix("MaxEntries"))
	}
	return nil
}

// file writes the regular file rel of size bytes read from r.
func (x *extractor) file(rel string, perm fs.FileMode, size int64, r io.Reader) error {
	if size > x.lim.File {
		return fmt.Errorf("it holds %d bytes, more than the %s one file may hold (%s)", size, sizeText(x.lim.File), capFix("MaxFileSize"))
	}
	if x.total+size > x.lim.Total {
		return fmt.Errorf("it takes the input past %s, what one input may unpack to (%s)", sizeText(x.lim.Total), capFix("MaxTotalSize"))
	}
	x.total += size
	if err := x.clear(rel); err != nil {
		return err
	}
	f, err := x.root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm|0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// mkdir makes the directory rel; one already there stays as it is.
func (x *extractor) mkdir(rel string, perm fs.FileMode) error {
	if fi, err := x.root.Lstat(rel); err == nil && fi.IsDir() {
		x.dirs[rel] = true
		return nil
	}
	if err := x.clear(rel); err != nil {
		return err
	}
	if err := x.root.Mkdir(rel, perm|0o700); err != nil {
		return err
	}
	x.dirs[rel] = true
	return nil
}

// link makes the hard link h, once every other entry is unpacked.
func (x *extractor) link(h *tar.Header) error {
	rel, _ := clean(h.Name) // checked when read
	to, ok := clean(h.Linkname)
	if !ok {
		return fmt.Errorf(`hard link to %q climbs out of the tree with ".."`, h.Linkname)
	}
	if to == rel {
		return errors.New("it is a hard link to itself")
	}
	err := x.dir(path.Dir(to), false, fmt.Sprintf("hard link to %q, whose path", h.Linkname), "a hard link's target may not be reached through a link")
	var fi fs.FileInfo
	if err == nil {
		fi, err = x.root.Lstat(to)
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("hard link to %q, which the input does not hold", h.Linkname)
	case err != nil:
		return err
	case !fi.Mode().IsRegular():
		return fmt.Errorf("hard link to %q, which is a %s; a hard link must name a regular file", h.Linkname, kind(fi.Mode()))
	}
	if err := x.dir(path.Dir(rel), true, "its path", writeRule); err != nil {
		return err
	}
	if err := x.clear(rel); err != nil {
		return err
	}
	return x.root.Link(to, rel)
}

// writeRule ends the error about an entry written through a symlink.
const writeRule = "an input layer may not write through a link"

// dir makes sure that d and each directory above it is a real directory of
// the tree, neither a symlink nor a file, making the missing ones if create
// is set (else a missing one is an fs.ErrNotExist). An error about a
// symlink or file on the way starts with what (whose path it is) and one
// about a symlink ends with rule.
func (x *extractor) dir(d string, create bool, what, rule string) error {
	if x.dirs[d] {
		return nil
	}
	if err := x.dir(path.Dir(d), create, what, rule); err != nil {
		return err
	}
	fi, err := x.root.Lstat(d)
	switch {
	case errors.Is(err, fs.ErrNotExist) && create:
		if err := x.count(); err != nil {
			return err
		}
		if err := x.root.Mkdir(d, 0o755); err != nil {
			return err
		}
	case err != nil:
		return err
	case fi.Mode()&fs.ModeSymlink != 0:
		to, _ := x.root.Readlink(d)
		return fmt.Errorf("%s goes through the symlink %q (-> %s); %s", what, d, to, rule)
	case !fi.IsDir():
		return fmt.Errorf("%s goes through %q, which is a %s, not a directory", what, d, kind(fi.Mode()))
	}
	x.dirs[d] = true
	return nil
}

// clear removes what rel names, if anything, so that an entry replaces it
// rather than writes through it. A directory must be empty.
func (x *extractor) clear(rel string) error {
	fi, err := x.root.Lstat(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := x.root.Remove(rel); err != nil {
		if fi.IsDir() {
			return fmt.Errorf("it would replace the directory %q, which is not empty", rel)
		}
		return err
	}
	delete(x.dirs, rel)
	return nil
}

// clean is name relative to the tree's top ("." for the top), and false if
// its ".." climbs out of the tree.
func clean(name string) (string, bool) {
	rel := path.Clean(strings.TrimLeft(name, "/"))
	return rel, rel != ".." && !strings.HasPrefix(rel, "../")
}

// kind names the type of a file mode for an error.
func kind(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "file"
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	}
	return m.Type().String()
}

// sizeText is n bytes in GiB or MiB when it is a whole number of them.
func sizeText(n int64) string {
	switch {
	case n > 0 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n > 0 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}
