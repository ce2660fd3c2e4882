package squashfs

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"math"
)

// Inode types. Directory entries name the basic type even for an
// extended inode.
const (
	typeDir      = 1
	typeFile     = 2
	typeSymlink  = 3
	typeExtDir   = 8
	typeExtFile  = 9
	maxDirRun    = 256 // entries under one directory header
	dirEntryBase = 3   // a directory's size counts "." and ".." as 3 bytes
)

// inodeHeader is the start of every inode.
type inodeHeader struct {
	Type   uint16
	Mode   uint16 // permission bits
	UID    uint16 // index into the id table
	GID    uint16 // index into the id table
	MTime  uint32
	Number uint32 // inode number
}

// basicFile is a regular file's inode (type 2) below 4 GiB; its block
// sizes follow it.
type basicFile struct {
	inodeHeader
	Start    uint32 // position of the first data block in the image
	Fragment uint32 // invalidFrag: the tail end is a block of its own
	Offset   uint32 // offset in the fragment: 0
	Size     uint32
}

// extFile is the extended file inode (type 9), for a file or a position
// past 4 GiB.
type extFile struct {
	inodeHeader
	Start    uint64
	Size     uint64
	Sparse   uint64 // bytes saved by sparse blocks: none
	Links    uint32
	Fragment uint32
	Offset   uint32
	Xattr    uint32
}

// basicSymlink is a symlink's inode (type 3); the target follows it.
type basicSymlink struct {
	inodeHeader
	Links      uint32
	TargetSize uint32
}

// basicDir is a directory's inode (type 1) with a listing below 64 KiB.
type basicDir struct {
	inodeHeader
	Block  uint32 // stored offset of the listing's first metadata block in the directory table
	Links  uint32 // 2 + subdirectories
	Size   uint16 // listing length + 3
	Offset uint16 // offset of the listing in that block, uncompressed
	Parent uint32 // parent directory's inode number
}

// extDir is the extended directory inode (type 8), for longer listings;
// it carries no index (lookups scan the listing).
type extDir struct {
	inodeHeader
	Links   uint32
	Size    uint32
	Block   uint32
	Parent  uint32
	Indexes uint16 // 0
	Offset  uint16
	Xattr   uint32
}

// dirHeader starts a run of directory entries whose inodes share one
// metadata block and lie within ±32 Ki inode numbers of Number.
type dirHeader struct {
	Count  uint32 // entries in the run − 1
	Block  uint32 // the inodes' metadata block, offset from the inode table
	Number uint32 // base inode number
}

// dirEntry is one name in a listing; the name follows it.
type dirEntry struct {
	Offset   uint16 // the inode's offset in its metadata block
	Delta    int16  // inode number − the header's Number
	Type     uint16 // basic inode type
	NameSize uint16 // name length − 1
}

func encode(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		var err error
		if b, err = binary.Append(b, binary.LittleEndian, p); err != nil {
			panic(err) // fixed-size structures only
		}
	}
	return b
}

func header(typ uint16, n *node, mtime uint32) inodeHeader {
	return inodeHeader{Type: typ, Mode: permissions(n.mode), MTime: mtime, Number: n.number}
}

// writeInode appends the inode of a regular file or symlink and records
// its reference.
func writeInode(it *metaWriter, n *node, mtime uint32) error {
	n.ref = it.ref()
	switch {
	case n.mode.IsRegular():
		if n.start > math.MaxUint32 || n.size > math.MaxUint32 {
			it.write(encode(extFile{inodeHeader: header(typeExtFile, n, mtime), Start: n.start, Size: n.size,
				Links: 1, Fragment: invalidFrag, Xattr: noXattr}, n.sizes))
			return nil
		}
		it.write(encode(basicFile{inodeHeader: header(typeFile, n, mtime), Start: uint32(n.start), Fragment: invalidFrag, Size: uint32(n.size)}, n.sizes))
	case n.mode&fs.ModeSymlink != 0:
		target, err := linkTarget(n)
		if err != nil {
			return err
		}
		it.write(encode(basicSymlink{inodeHeader: header(typeSymlink, n, mtime), Links: 1, TargetSize: uint32(len(target))}))
		it.write([]byte(target))
	default:
		return fmt.Errorf("%s: mode %v is neither a file, a directory nor a symlink", n.entry.Path, n.mode)
	}
	return nil
}

// writeDir appends d's listing to the directory table and d's inode to
// the inode table. Its children's inodes are written already.
func writeDir(it, dt *metaWriter, d *node, mtime, inodes uint32) error {
	ref := dt.ref()
	listing, err := dirListing(d.children)
	if err != nil {
		return err
	}
	dt.write(listing)
	links := uint32(2)
	for _, c := range d.children {
		if c.isDir() {
			links++
		}
	}
	parent := inodes + 1 // the root's, as mksquashfs writes it
	if d.parent != nil {
		parent = d.parent.number
	}
	size := len(listing) + dirEntryBase
	block, offset := ref>>16, uint16(ref&0xffff)
	if block > math.MaxUint32 {
		return errTooLarge
	}
	d.ref = it.ref()
	if size <= math.MaxUint16 {
		it.write(encode(basicDir{inodeHeader: header(typeDir, d, mtime), Block: uint32(block), Links: links,
			Size: uint16(size), Offset: offset, Parent: parent}))
		return nil
	}
	if size > math.MaxUint32 {
		return errTooLarge
	}
	it.write(encode(extDir{inodeHeader: header(typeExtDir, d, mtime), Links: links, Size: uint32(size),
		Block: uint32(block), Parent: parent, Offset: offset, Xattr: noXattr}))
	return nil
}

// dirListing encodes the entries of a directory, sorted by name: runs of
// up to 256 entries under a header, a new run wherever the inodes' metadata
// block changes or an inode number is too far from the run's first.
func dirListing(children []*node) ([]byte, error) {
	var b []byte
	for i := 0; i < len(children); {
		first := children[i]
		block := first.ref >> 16
		if block > math.MaxUint32 {
			return nil, errTooLarge
		}
		j := i
		for j < len(children) && j-i < maxDirRun && children[j].ref>>16 == block {
			if d := int64(children[j].number) - int64(first.number); d < math.MinInt16 || d > math.MaxInt16 {
				break
			}
			j++
		}
		b = append(b, encode(dirHeader{Count: uint32(j - i - 1), Block: uint32(block), Number: first.number})...)
		for _, c := range children[i:j] {
			typ := uint16(typeFile)
			switch {
			case c.isDir():
				typ = typeDir
			case c.mode&fs.ModeSymlink != 0:
				typ = typeSymlink
			}
			b = append(b, encode(dirEntry{Offset: uint16(c.ref & 0xffff), Delta: int16(int64(c.number) - int64(first.number)),
				Type: typ, NameSize: uint16(len(c.name) - 1)})...)
			b = append(b, c.name...)
		}
		i = j
	}
	return b, nil
}
