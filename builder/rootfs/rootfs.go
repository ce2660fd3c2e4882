// Package rootfs reads the files of a root file system unpacked on the
// build host, an input image's tree in the cache (builder/untar), as the
// node would read them, and never anything outside it. The builder runs as
// root and an input is untrusted: its tree keeps the input's symlinks, and
// a plain os.Open of TREE/boot/vmlinuz follows boot/vmlinuz -> /etc/shadow
// to the build host's own file.
//
//	t := rootfs.New(dir)
//	kernel, err := t.HostPath("boot/vmlinuz") // a path with no link in it
//	dep, err := t.ReadFile("lib/modules/6.1.0-28-amd64/modules.dep")
//
// Names are slash-separated and relative to the tree's top; a leading "/"
// is the top. A symlink on the way is followed inside the tree, as on the
// node: a relative target from the link's directory, an absolute one from
// the top, because it names a file of the node, never one of the build
// host. A ".." that climbs above the top, in a name or a link, is refused,
// as is a chain of more than 40 links (Linux's limit) and a link whose
// target the tree does not hold; each such error names the link. Every
// read here goes through an os.Root on the top as well, so that a mistake
// in following links still cannot leave the tree.
//
// HostPath is for code that takes host paths (fstree's host files, the
// boot partition's kernel): its answer goes through no link, and stays so
// as long as nobody writes the tree, which holds for the cache's trees,
// unpacked once and only read after.
package rootfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// maxLinks is how many symlinks one name may go through, as on Linux
// (MAXSYMLINKS), so that a loop ends.
const maxLinks = 40

// Tree is a root file system unpacked in a directory of the build host.
type Tree struct {
	dir string
}

// New returns the tree whose top is the host directory dir.
func New(dir string) *Tree { return &Tree{dir: dir} }

// Dir is the host directory of the tree's top. Joining a name to it and
// opening the result follows the tree's links on the host: use the
// methods instead, or code that does not follow links (fstree.CopyDir).
func (t *Tree) Dir() string { return t.dir }

// Resolve returns name with every link on the way followed inside the
// tree: a clean slash-separated path relative to the top ("." for the top)
// that goes through no link. The file it names exists, except when the
// last element of name is missing and name went through no link (then the
// error is an fs.ErrNotExist).
func (t *Tree) Resolve(name string) (string, error) {
	return at(t, name, false, func(_ *os.Root, rel string) (string, error) { return rel, nil })
}

// HostPath returns the host path of the regular file name, with the
// tree's links followed inside the tree: a path through real directories
// only, which plain os.Open may read while the tree does not change.
func (t *Tree) HostPath(name string) (string, error) {
	return at(t, name, false, func(r *os.Root, rel string) (string, error) {
		fi, err := r.Lstat(rel)
		if err != nil {
			return "", err
		}
		if !fi.Mode().IsRegular() {
			return "", fmt.Errorf("%s is a %s, not a file", describe(name, rel), kind(fi.Mode()))
		}
		return filepath.Join(t.dir, filepath.FromSlash(rel)), nil
	})
}

// Open opens the file name for reading.
func (t *Tree) Open(name string) (*os.File, error) {
	return at(t, name, true, (*os.Root).Open)
}

// ReadFile returns the content of the file name.
func (t *Tree) ReadFile(name string) ([]byte, error) {
	return at(t, name, true, (*os.Root).ReadFile)
}

// ReadDir lists the directory name, sorted by file name. Its entries are
// what the directory holds: a link is listed as a link.
func (t *Tree) ReadDir(name string) ([]fs.DirEntry, error) {
	return at(t, name, false, func(r *os.Root, rel string) ([]fs.DirEntry, error) { return fs.ReadDir(r.FS(), rel) })
}

// WalkDir walks the tree below the directory name as fs.WalkDir does,
// following the links on the way to name but none below it: fn gets each
// file's path relative to the top, through no link (name resolved).
func (t *Tree) WalkDir(name string, fn fs.WalkDirFunc) error {
	_, err := at(t, name, false, func(r *os.Root, rel string) (struct{}, error) {
		return struct{}{}, fs.WalkDir(r.FS(), rel, fn)
	})
	return err
}

// at resolves name on an os.Root opened on the tree's top and runs f on
// the root and the resolved name. With direct, it first runs f on name as
// it is, and resolves only when that fails: os.Root follows a relative
// link that stays inside as the node does and fails on any other, so that
// what it reads is what resolve would find, for a fraction of the system
// calls (resolve walks from the top for each element).
func at[T any](t *Tree, name string, direct bool, f func(r *os.Root, rel string) (T, error)) (T, error) {
	var zero T
	r, err := os.OpenRoot(t.dir)
	if err != nil {
		return zero, err
	}
	defer r.Close()
	if direct {
		if v, err := f(r, path.Clean("./"+strings.TrimLeft(name, "/"))); err == nil {
			return v, nil
		}
	}
	rel, err := resolve(r, name)
	if err != nil {
		return zero, err
	}
	return f(r, rel)
}

// element is one element of a name being resolved, with the link whose
// target it comes from (nil for the name's own elements).
type element struct {
	name string
	from *link
}

// link is a symlink met on the way: its path in the tree and its target.
type link struct {
	path, target string
}

// resolve is Resolve on the root r.
func resolve(r *os.Root, name string) (string, error) {
	todo := elements(name, nil)
	var done []string // real directories, then the last element
	var last *link    // the last link followed
	links := 0
	for len(todo) > 0 {
		e := todo[0]
		todo = todo[1:]
		if e.name == ".." {
			if len(done) == 0 {
				return "", &linkError{name: name, link: e.from, problem: outside}
			}
			done = done[:len(done)-1]
			continue
		}
		p := path.Join(append(done, e.name)...)
		fi, err := r.Lstat(p)
		var pe *fs.PathError
		switch {
		case err != nil && last != nil && errors.Is(err, fs.ErrNotExist):
			return "", &linkError{name: name, link: last, problem: missing, at: rest(p, todo)}
		case errors.As(err, &pe):
			return "", &fs.PathError{Op: "open", Path: name, Err: pe.Err}
		case err != nil:
			return "", err
		case fi.Mode()&fs.ModeSymlink == 0:
			done = append(done, e.name)
			continue
		}
		target, err := r.Readlink(p)
		if err != nil {
			return "", err
		}
		last = &link{path: p, target: target}
		if links++; links > maxLinks {
			return "", &linkError{name: name, link: last, problem: loop}
		}
		if strings.HasPrefix(target, "/") {
			done = nil // the node's /, which is the tree's top
		}
		todo = append(elements(target, last), todo...)
	}
	if len(done) == 0 {
		return ".", nil
	}
	return path.Join(done...), nil
}

// rest is the path p followed by the elements still to resolve, for an
// error.
func rest(p string, todo []element) string {
	for _, e := range todo {
		p += "/" + e.name
	}
	return path.Clean(p)
}

// elements splits a name or link target into its elements, without the
// empty and "." ones.
func elements(s string, from *link) []element {
	var out []element
	for _, n := range strings.Split(s, "/") {
		if n != "" && n != "." {
			out = append(out, element{name: n, from: from})
		}
	}
	return out
}

// The problems a linkError reports.
const (
	outside = iota // a ".." climbs above the top
	missing        // a link leads to what the tree does not hold
	loop           // too many links
)

// linkError is a name that cannot be read inside the tree because of ".."
// or a link on the way.
type linkError struct {
	// name is what was asked for.
	name string
	// link is the link to blame; nil when name itself climbs out.
	link *link
	// problem is outside, missing or loop.
	problem int
	// at is the path (links followed) the tree does not hold, for missing.
	at string
}

func (e *linkError) Error() string {
	if e.link == nil {
		return fmt.Sprintf(`%s climbs out of the input with ".." (an input's files must be inside it)`, e.name)
	}
	what := e.name + " is a link to " + e.link.target
	if e.link.path != strings.Trim(path.Clean("/"+e.name), "/") {
		what = fmt.Sprintf("%s goes through %s, a link to %s", e.name, e.link.path, e.link.target)
	}
	switch e.problem {
	case outside:
		return what + ", outside the input (an input's files must be inside it)"
	case loop:
		return fmt.Sprintf("%s: more than %d links on the way, the last %s -> %s (is there a loop?)", e.name, maxLinks, e.link.path, e.link.target)
	}
	why := ""
	if strings.HasPrefix(e.link.target, "/") {
		why = " (an absolute link names a file of the input, as on the node, not of the build host)"
	}
	return fmt.Sprintf("%s, but the input holds no %s%s", what, e.at, why)
}

// describe is name for an error, with where its links lead if anywhere else.
func describe(name, rel string) string {
	if strings.Trim(path.Clean("/"+name), "/") == rel {
		return name
	}
	return fmt.Sprintf("%s (a link to %s)", name, rel)
}

// kind names the type of a file mode for an error.
func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	}
	return m.Type().String()
}
