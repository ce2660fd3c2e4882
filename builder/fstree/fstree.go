// Package fstree is the plan of a file system: an in-memory list of files,
// directories and symlinks with their modes, owned by root, whose contents
// are bytes or host files. Builders fill a Tree; writers (squashfs, cpio)
// turn it into an image. Keeping the plan separate lets it be tested without
// writing anything.
package fstree

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Entry is one node of the tree.
type Entry struct {
	// Path is slash-separated and relative: "sbin/init".
	Path string
	// Mode holds the type bits (fs.ModeDir, fs.ModeSymlink) and permissions.
	Mode fs.FileMode
	// Data is a regular file's content when Source is empty.
	Data []byte
	// Source is a host file to copy a regular file's content from.
	Source string
	// Target is a symlink's target.
	Target string
}

// Open returns a reader for a regular file's content.
func (e *Entry) Open() (io.ReadCloser, error) {
	if e.Source != "" {
		return os.Open(e.Source)
	}
	return io.NopCloser(strings.NewReader(string(e.Data))), nil
}

// Tree is a set of entries keyed by path; parents are created as needed.
type Tree struct {
	entries map[string]*Entry
}

// New returns an empty tree.
func New() *Tree { return &Tree{entries: map[string]*Entry{}} }

func clean(p string) (string, error) {
	c := path.Clean("/" + filepath.ToSlash(p))[1:]
	if c == "" {
		return "", fmt.Errorf("path %q names the root", p)
	}
	return c, nil
}

func (t *Tree) add(e *Entry) error {
	p, err := clean(e.Path)
	if err != nil {
		return err
	}
	e.Path = p
	if dir := path.Dir(p); dir != "." {
		if err := t.Dir(dir, 0o755); err != nil {
			return err
		}
	}
	if old, ok := t.entries[p]; ok && old.Mode.IsDir() != e.Mode.IsDir() {
		return fmt.Errorf("%s is given both as a directory and as a file", p)
	}
	t.entries[p] = e
	return nil
}

// Dir adds a directory (and its parents); an existing directory keeps its mode.
func (t *Tree) Dir(p string, perm fs.FileMode) error {
	c, err := clean(p)
	if err != nil {
		return err
	}
	if old, ok := t.entries[c]; ok {
		if !old.Mode.IsDir() {
			return fmt.Errorf("%s is given both as a file and as a directory", c)
		}
		return nil
	}
	return t.add(&Entry{Path: c, Mode: fs.ModeDir | perm.Perm()})
}

// File adds a regular file with the given content.
func (t *Tree) File(p string, perm fs.FileMode, data []byte) error {
	return t.add(&Entry{Path: p, Mode: perm.Perm(), Data: data})
}

// HostFile adds a regular file whose content is copied from a host file.
func (t *Tree) HostFile(p string, perm fs.FileMode, source string) error {
	if _, err := os.Stat(source); err != nil {
		return err
	}
	return t.add(&Entry{Path: p, Mode: perm.Perm(), Source: source})
}

// Symlink adds a symbolic link.
func (t *Tree) Symlink(p, target string) error {
	return t.add(&Entry{Path: p, Mode: fs.ModeSymlink | 0o777, Target: target})
}

// CopyDir adds everything below the host directory src at dst, keeping
// permissions (not owners or times). Only files, directories and symlinks
// are allowed.
func (t *Tree) CopyDir(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := path.Join(dst, filepath.ToSlash(rel))
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch m := info.Mode(); {
		case m.IsDir():
			if target == "" || target == "." {
				return nil
			}
			return t.Dir(target, m.Perm())
		case m.IsRegular():
			return t.add(&Entry{Path: target, Mode: m.Perm(), Source: p})
		case m&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return t.Symlink(target, link)
		default:
			return fmt.Errorf("%s is a %v; only files, directories and symlinks can go into an image", p, m.Type())
		}
	})
}

// Get returns the entry at p.
func (t *Tree) Get(p string) (*Entry, bool) {
	c, err := clean(p)
	if err != nil {
		return nil, false
	}
	e, ok := t.entries[c]
	return e, ok
}

// Entries returns all entries sorted by path, parents before children.
func (t *Tree) Entries() []*Entry {
	out := make([]*Entry, 0, len(t.entries))
	for _, e := range t.entries {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}
