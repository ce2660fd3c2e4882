// Package squashfs writes a file tree as a zlib-compressed ("gzip" in
// squashfs terms), read-only squashfs 4.0 image, reproducibly and laid out
// so that a small change to the tree is a small change to the image — the
// property delta updates (agent/update/chunk) depend on:
//
//   - file data comes first, file after file depth first in name order
//     (a stable order: the same tree gives the same image), each file's
//     blocks contiguous; its tail end is a block of its own, never
//     packed with other files' tails into a shared fragment block, so
//     changing one file leaves every other file's bytes unchanged (they
//     only move, which content-defined chunking absorbs);
//   - a data block that compression does not shrink by at least 1/64 is
//     stored as is: a block of an already-compressed file (an image layer)
//     then holds the file's own bytes, which chunks find again even when
//     a change before them moved them;
//   - the metadata (inode table, directory table, id table), which every
//     change touches, is small and comes last;
//   - every timestamp is the given epoch, every file is owned by root, and
//     the image is padded to 4 KiB.
//
// It replaced go-diskfs's writer (v1.9.4), which packed every file's tail
// into shared fragment blocks, so that one changed tail rewrote all the
// fragment blocks after it, gave each fragment block a whole 128 KiB of
// the image however little it held, and could not store a symlink whose
// target is absent at build time.
//
// The image has no fragments, no extended attributes and no NFS export
// table. The format is the one the kernel documents in
// Documentation/filesystems/squashfs.rst and squashfs-tools writes.
//
//	size, err := squashfs.Write(tree, "slot.squashfs", epoch)
package squashfs

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/cairn-edge/cairn/builder/fstree"
)

// Format constants (squashfs 4.0).
const (
	magic        = 0x73717368 // "hsqs"
	blockSize    = 128 << 10  // data block size
	blockLog     = 17         // log2(blockSize)
	metaSize     = 8 << 10    // uncompressed size of a metadata block
	zlibID       = 1          // compression id of zlib ("gzip")
	invalid64    = ^uint64(0) // an absent table
	invalidFrag  = ^uint32(0) // a file without a fragment
	noXattr      = ^uint32(0) // an inode without extended attributes
	maxNameLen   = 256        // longest name a directory entry holds
	padTo        = 4096       // the image is padded to a multiple of this
	superblockSz = 96
)

// Superblock flags.
const (
	flagNoFragments = 0x0010
	flagNoXattrs    = 0x0200
)

// superblock is the image's first 96 bytes, in on-disk order.
type superblock struct {
	Magic      uint32 // "hsqs"
	Inodes     uint32 // number of inodes
	ModTime    uint32 // mkfs time, seconds since 1970: the epoch
	BlockSize  uint32 // data block size
	Fragments  uint32 // fragment table entries: none
	Compressor uint16 // compression id
	BlockLog   uint16 // log2(BlockSize), checked against it by the kernel
	Flags      uint16
	IDs        uint16 // entries in the id (uid/gid) table
	Major      uint16 // 4
	Minor      uint16 // 0
	RootInode  uint64 // reference of the root directory's inode
	BytesUsed  uint64 // end of the last table, before padding
	IDTable    uint64 // id table's index
	XattrTable uint64 // none
	InodeTable uint64
	DirTable   uint64
	FragTable  uint64 // where the (empty) fragment table would be
	ExportTab  uint64 // none
}

// Write writes tree as a squashfs image to out (created or truncated) and
// returns its size, padding included.
func Write(tree *fstree.Tree, out string, epoch time.Time) (int64, error) {
	root, err := plan(tree)
	if err != nil {
		return 0, fmt.Errorf("squashfs: %w", err)
	}
	f, err := os.OpenFile(out, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	size, err := write(f, root, uint32(epoch.Unix()))
	if err != nil {
		return 0, fmt.Errorf("squashfs: %s: %w", out, err)
	}
	return size, f.Close()
}

// node is one entry of the tree being written.
type node struct {
	name     string
	entry    *fstree.Entry // nil for the root
	mode     fs.FileMode
	children []*node // directories: sorted by name
	parent   *node   // nil for the root
	number   uint32  // inode number, 1..n

	// Filled while writing.
	start uint64   // regular files: position of the first data block
	sizes []uint32 // regular files: each block's stored size and flag
	size  uint64   // regular files: length
	ref   uint64   // inode reference: metadata block << 16 | offset
}

func (n *node) isDir() bool { return n.mode.IsDir() }

// plan turns the tree into directories of sorted children with inode
// numbers: children before their parent, depth first, the root last —
// the order the inodes are written in, so a directory's listing can name
// its children's inodes.
func plan(tree *fstree.Tree) (*node, error) {
	root := &node{mode: fs.ModeDir | 0o755}
	dirs := map[string]*node{".": root}
	// Entries are sorted by path, so a parent comes before its children.
	for _, e := range tree.Entries() {
		name := path.Base(e.Path)
		if len(name) > maxNameLen {
			return nil, fmt.Errorf("%s: the name is %d bytes, squashfs holds at most %d (shorten it)", e.Path, len(name), maxNameLen)
		}
		parent, ok := dirs[path.Dir(e.Path)]
		if !ok {
			return nil, fmt.Errorf("%s: its directory is not in the tree (a bug in builder/fstree)", e.Path)
		}
		n := &node{name: name, entry: e, mode: e.Mode, parent: parent}
		parent.children = append(parent.children, n)
		if e.Mode.IsDir() {
			dirs[e.Path] = n
		}
	}
	var next uint32
	var number func(d *node)
	number = func(d *node) {
		sortByName(d.children)
		for _, c := range d.children {
			if c.isDir() {
				number(c)
			} else {
				next++
				c.number = next
			}
		}
		next++
		d.number = next
	}
	number(root)
	return root, nil
}

// sortByName sorts bytewise, the order squashfs listings are in (and
// the order Entries gives already).
func sortByName(ns []*node) {
	slices.SortFunc(ns, func(a, b *node) int { return strings.Compare(a.name, b.name) })
}

// walk calls fn for every node below d in inode order (children before
// their directory), then for d.
func walk(d *node, fn func(*node) error) error {
	for _, c := range d.children {
		if c.isDir() {
			if err := walk(c, fn); err != nil {
				return err
			}
		} else if err := fn(c); err != nil {
			return err
		}
	}
	return fn(d)
}

// write lays the image out in f: superblock, file data, inode table,
// directory table, id table, padding.
func write(f *os.File, root *node, mtime uint32) (int64, error) {
	w := &countWriter{w: bufio.NewWriterSize(f, 1<<20), n: superblockSz}
	if _, err := f.Seek(superblockSz, io.SeekStart); err != nil {
		return 0, err
	}
	data := newDataWriter(w)
	var inodes uint32
	err := walk(root, func(n *node) error {
		inodes++
		if !n.mode.IsRegular() {
			return nil
		}
		if err := data.file(n); err != nil {
			return fmt.Errorf("%s: %w", n.entry.Path, err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}

	it, dt := newMetaWriter(), newMetaWriter()
	err = walk(root, func(n *node) error {
		if n.isDir() {
			return writeDir(it, dt, n, mtime, inodes)
		}
		return writeInode(it, n, mtime)
	})
	if err != nil {
		return 0, err
	}
	sb := superblock{
		Magic: magic, Inodes: inodes, ModTime: mtime, BlockSize: blockSize,
		Compressor: zlibID, BlockLog: blockLog, Flags: flagNoFragments | flagNoXattrs,
		IDs: 1, Major: 4, Minor: 0, RootInode: root.ref,
		XattrTable: invalid64, ExportTab: invalid64,
	}
	sb.InodeTable = uint64(w.n)
	if err := it.flush(w); err != nil {
		return 0, err
	}
	sb.DirTable = uint64(w.n)
	if err := dt.flush(w); err != nil {
		return 0, err
	}
	// The id table: one metadata block with the one id (0: root), then
	// its index, a pointer to that block. The fragment table, empty, would
	// start where the id table does (as mksquashfs writes it).
	sb.FragTable = uint64(w.n)
	ids := newMetaWriter()
	ids.write(binary.LittleEndian.AppendUint32(nil, 0))
	idBlock := uint64(w.n)
	if err := ids.flush(w); err != nil {
		return 0, err
	}
	sb.IDTable = uint64(w.n)
	if _, err := w.Write(binary.LittleEndian.AppendUint64(nil, idBlock)); err != nil {
		return 0, err
	}
	sb.BytesUsed = uint64(w.n)
	if pad := (padTo - w.n%padTo) % padTo; pad > 0 {
		if _, err := w.Write(make([]byte, pad)); err != nil {
			return 0, err
		}
	}
	if err := w.w.Flush(); err != nil {
		return 0, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	if err := binary.Write(f, binary.LittleEndian, &sb); err != nil {
		return 0, err
	}
	return w.n, nil
}

// countWriter counts the bytes written: the position in the image.
type countWriter struct {
	w *bufio.Writer
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// errTooLarge: the tree does not fit the format's 32-bit fields.
var errTooLarge = errors.New("too large for squashfs")

// permissions returns the inode's mode bits: permissions plus setuid,
// setgid and sticky in their Unix places.
func permissions(m fs.FileMode) uint16 {
	p := uint16(m.Perm())
	if m&fs.ModeSetuid != 0 {
		p |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		p |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		p |= 0o1000
	}
	return p
}

// linkTarget is a symlink's target, which squashfs stores as is (it may
// point nowhere at build time, e.g. into a tmpfs mounted at run time).
func linkTarget(n *node) (string, error) {
	if n.entry.Target == "" {
		return "", fmt.Errorf("%s: a symlink without a target", n.entry.Path)
	}
	if strings.IndexByte(n.entry.Target, 0) >= 0 {
		return "", fmt.Errorf("%s: the link target holds a NUL byte", n.entry.Path)
	}
	return n.entry.Target, nil
}
