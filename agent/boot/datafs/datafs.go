// Package datafs prepares the persistent data partition (CAIRN-DATA): it
// tells a blank partition from one holding a filesystem, makes an ext4
// filesystem in Go (go-diskfs, no mkfs binary in the image) on a blank
// one, and grows a mounted ext4 online when its partition grew.
//
// It never writes to a partition that holds anything but zeros: a
// partition it does not recognise is reported, not wiped.
package datafs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"unsafe"

	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/ext4"
	"golang.org/x/sys/unix"
)

// Label is the ext4 volume label of the data filesystem.
const Label = contract.DataFSLabel

// ProbeSize is how much of the partition start must be zero for it to
// count as blank. It covers the superblock of every common filesystem
// (ext4 at 1 KiB, XFS and FAT at 0, btrfs at 64 KiB, squashfs at 0) and
// LUKS headers.
const ProbeSize = 1 << 20

// Kind is what a partition holds.
type Kind int

const (
	// Blank means the probed area is all zeros: safe to format.
	Blank Kind = iota
	// Ext4 means an ext2/3/4 superblock is present: mount it.
	Ext4
	// Unknown means data that is not ext4: leave it alone.
	Unknown
)

func (k Kind) String() string {
	switch k {
	case Blank:
		return "blank"
	case Ext4:
		return "ext4"
	}
	return "unknown"
}

// Superblock holds the ext4 superblock fields datafs uses.
type Superblock struct {
	Blocks    uint64 // filesystem size in blocks
	BlockSize uint64 // bytes per block
	Label     string // volume name
}

// Size is the filesystem size in bytes.
func (s Superblock) Size() uint64 { return s.Blocks * s.BlockSize }

const (
	sbOffset    = 1024   // the superblock starts 1 KiB into the partition
	magicOffset = 0x38   // s_magic
	ext4Magic   = 0xEF53 // EXT4_SUPER_MAGIC
	incompat64  = 0x80   // EXT4_FEATURE_INCOMPAT_64BIT
)

// ParseSuperblock decodes an ext4 superblock from the first 2 KiB (or
// more) of a partition.
func ParseSuperblock(b []byte) (Superblock, error) {
	if len(b) < sbOffset+1024 {
		return Superblock{}, fmt.Errorf("superblock: need %d bytes, have %d", sbOffset+1024, len(b))
	}
	sb := b[sbOffset : sbOffset+1024]
	le := binary.LittleEndian
	if le.Uint16(sb[magicOffset:]) != ext4Magic {
		return Superblock{}, errors.New("no ext4 superblock (magic 0xEF53 missing)")
	}
	logBS := le.Uint32(sb[0x18:])
	if logBS > 6 { // 64 KiB is the largest block size Linux mounts
		return Superblock{}, fmt.Errorf("ext4 superblock has block size 2^%d KiB", logBS)
	}
	s := Superblock{BlockSize: 1024 << logBS, Blocks: uint64(le.Uint32(sb[0x4:]))}
	if le.Uint32(sb[0x60:])&incompat64 != 0 {
		s.Blocks |= uint64(le.Uint32(sb[0x150:])) << 32
	}
	s.Label = string(bytes.TrimRight(sb[0x78:0x88], "\x00"))
	return s, nil
}

// Classify tells what the start of a partition holds.
func Classify(head []byte) Kind {
	if _, err := ParseSuperblock(head); err == nil {
		return Ext4
	}
	for _, c := range head {
		if c != 0 {
			return Unknown
		}
	}
	return Blank
}

// Probe reads the first ProbeSize bytes of dev (or all of it when smaller)
// and classifies them.
func Probe(dev string) (Kind, error) {
	f, err := os.Open(dev)
	if err != nil {
		return Unknown, fmt.Errorf("opening %s: %w", dev, err)
	}
	defer f.Close()
	head := make([]byte, ProbeSize)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return Unknown, fmt.Errorf("reading %s: %w", dev, err)
	}
	if n < sbOffset+1024 {
		return Unknown, fmt.Errorf("%s is only %d bytes, too small for a filesystem", dev, n)
	}
	return Classify(head[:n]), nil
}

// ReadSuperblock reads the ext4 superblock of dev.
func ReadSuperblock(dev string) (Superblock, error) {
	f, err := os.Open(dev)
	if err != nil {
		return Superblock{}, err
	}
	defer f.Close()
	b := make([]byte, sbOffset+1024)
	if _, err := f.ReadAt(b, 0); err != nil {
		return Superblock{}, fmt.Errorf("reading superblock of %s: %w", dev, err)
	}
	sb, err := ParseSuperblock(b)
	if err != nil {
		return Superblock{}, fmt.Errorf("%s: %w", dev, err)
	}
	return sb, nil
}

// Format makes an ext4 filesystem of size bytes on dev. Callers must have
// seen Probe return Blank: Format itself checks again and refuses anything
// else, so a caller's bug cannot wipe data.
func Format(dev string, size int64) error {
	kind, err := Probe(dev)
	if err != nil {
		return err
	}
	if kind != Blank {
		return fmt.Errorf("refusing to format %s: it holds %s data, not zeros", dev, kind)
	}
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", dev, err)
	}
	defer f.Close()
	fs, err := ext4.Create(file.New(f, false), size, 0, 512, &ext4.Params{
		VolumeName: Label,
		// 4 KiB blocks whatever the size: go-diskfs would pick 1 KiB for
		// small partitions, and its 1 KiB layout cannot be grown online.
		SectorsPerBlock: 8,
		// No resize inode: go-diskfs lays out its reserved GDT blocks
		// in a way the kernel's online resize rejects ("reserved block
		// not at offset"). Without it the kernel grows within the
		// existing descriptor blocks and converts to meta_bg beyond.
		Features: []ext4.FeatureOpt{ext4.WithFeatureReservedGDTBlocksForExpansion(false)},
	})
	if err != nil {
		return fmt.Errorf("making ext4 on %s: %w", dev, err)
	}
	_ = fs.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dev, err)
	}
	return nil
}

// ext4IOCResizeFS is EXT4_IOC_RESIZE_FS, _IOW('f', 16, __u64).
const ext4IOCResizeFS = 0x40086610

// resizeFS asks the kernel to grow the ext4 mounted at dir to blocks
// blocks; tests replace it.
var resizeFS = func(dir string, blocks uint64) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, d.Fd(), ext4IOCResizeFS, uintptr(unsafe.Pointer(&blocks)))
	if errno != 0 {
		return errno
	}
	return nil
}

// GrowPlan returns the block count to grow a filesystem to so that it
// fills a partition of partSize bytes, and ok=false when it already does
// (within a MiB, so a partition that is not a whole number of blocks does
// not cause a resize on every boot).
func GrowPlan(sb Superblock, partSize uint64) (blocks uint64, ok bool) {
	if sb.BlockSize == 0 {
		return 0, false
	}
	blocks = partSize / sb.BlockSize
	if blocks <= sb.Blocks || (blocks-sb.Blocks)*sb.BlockSize < 1<<20 {
		return 0, false
	}
	return blocks, true
}

// GrowOnline grows the ext4 on dev, mounted at dir, to fill partSize
// bytes. It returns the old and new sizes in bytes; grown is false when
// there was nothing to do.
func GrowOnline(dev, dir string, partSize uint64) (oldSize, newSize uint64, grown bool, err error) {
	sb, err := ReadSuperblock(dev)
	if err != nil {
		return 0, 0, false, err
	}
	blocks, ok := GrowPlan(sb, partSize)
	if !ok {
		return sb.Size(), sb.Size(), false, nil
	}
	if err := resizeFS(dir, blocks); err != nil {
		return sb.Size(), sb.Size(), false, fmt.Errorf("growing ext4 on %s from %d to %d blocks (EXT4_IOC_RESIZE_FS): %w", dev, sb.Blocks, blocks, err)
	}
	return sb.Size(), blocks * sb.BlockSize, true, nil
}
