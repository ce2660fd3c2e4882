// Package datafs prepares the persistent data partition (CAIRN-DATA): it
// tells a blank partition from one holding a file system, makes an ext4 in
// Go (go-diskfs, no mkfs binary in the image) on a blank one, and grows a
// mounted ext4 online when its partition grew.
//
// It never writes to a partition that holds anything but zeros, unless it
// knows it wrote what is there itself: a partition it does not recognise is
// reported, not wiped.
//
// # Formatting survives a power cut
//
// Format first fills the partition's first sector with a fixed marker
// (bytes ext4 leaves unused: its superblock starts at 1 KiB), makes the
// file system, and only then zeroes the marker. A file system whose first
// sector still holds the marker, or any part of it, is one Format began and
// did not finish: Probe calls it Unfinished and Format makes it again. The
// states of the partition, in the order Format moves through them:
//
//	state                                   Probe       next boot
//	0 zeros, or states 1-4 of a format      Blank or    formats
//	  that was cut off                      Unfinished
//	1 marker being written (sector 0 holds  Unfinished  formats
//	  zeros and marker bytes, the rest is
//	  as in state 0)                                    (sync)
//	2 marker; ext4 being written: any       Unfinished  formats
//	  subset of its blocks, old or new
//	3 marker; ext4 complete                 Unfinished  formats
//	                                                    (sync)
//	4 marker being zeroed; ext4 complete    Unfinished  formats
//	                                                    (sync)
//	5 sector 0 zeros; ext4 complete         Ext4        mounts
//
// The syncs order the states on a disk that caches writes: the marker is
// on the medium before any block of the file system, and every block of
// the file system is before the marker goes. Within a state the disk may
// land writes in any order or tear one anywhere: each state accepts every
// mix of its old and new bytes. A file system is mounted only from state 5,
// so the ext4 thrown away in states 1–4 never held data. Marker bytes
// count one by one (a torn sector leaves a mix of zeros and marker), with
// the second sector zero as well; data Cairn did not write would have to
// match the 512-byte marker byte for byte wherever it is not zero, which
// nothing does by chance.
//
// # The ext4
//
// 4 KiB blocks, 128 MiB block groups, one inode per 8 KiB, no resize inode
// (GrowOnline's kernel resize needs none), no metadata checksums
// (go-diskfs's default; Format edits the superblock in place and checks
// that none is there to follow). Format rounds go-diskfs's
// inodes per group to whole inode table blocks, leaves a last block group
// under 8 MiB unused, turns off the mount-count check and sets the errors
// behaviour to remount-ro (see [MountFlags]): see [Format].
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
	// Unfinished means an ext4 that Format began and did not finish (the
	// power went): format it again.
	Unfinished
)

func (k Kind) String() string {
	switch k {
	case Blank:
		return "blank"
	case Ext4:
		return "ext4"
	case Unfinished:
		return "unfinished ext4"
	}
	return "unknown"
}

// Superblock holds the ext4 superblock fields datafs uses.
type Superblock struct {
	Blocks         uint64 // filesystem size in blocks
	BlockSize      uint64 // bytes per block
	BlocksPerGroup uint64 // blocks in each block group
	InodesPerGroup uint64 // inodes in each block group
	InodeSize      uint64 // bytes per inode in the inode tables
	Label          string // volume name
}

// Size is the filesystem size in bytes.
func (s Superblock) Size() uint64 { return s.Blocks * s.BlockSize }

const (
	sbOffset    = 1024   // the superblock starts 1 KiB into the partition
	sbSize      = 1024   // and is 1 KiB long
	magicOffset = 0x38   // s_magic
	ext4Magic   = 0xEF53 // EXT4_SUPER_MAGIC
	incompat64  = 0x80   // EXT4_FEATURE_INCOMPAT_64BIT
)

// ParseSuperblock decodes an ext4 superblock from the first 2 KiB (or
// more) of a partition.
func ParseSuperblock(b []byte) (Superblock, error) {
	if len(b) < sbOffset+sbSize {
		return Superblock{}, fmt.Errorf("superblock: need %d bytes, have %d", sbOffset+sbSize, len(b))
	}
	sb := b[sbOffset : sbOffset+sbSize]
	le := binary.LittleEndian
	if le.Uint16(sb[magicOffset:]) != ext4Magic {
		return Superblock{}, errors.New("no ext4 superblock (magic 0xEF53 missing)")
	}
	logBS := le.Uint32(sb[0x18:])
	if logBS > 6 { // 64 KiB is the largest block size Linux mounts
		return Superblock{}, fmt.Errorf("ext4 superblock has block size 2^%d KiB", logBS)
	}
	s := Superblock{
		BlockSize:      1024 << logBS,
		Blocks:         uint64(le.Uint32(sb[0x4:])),
		BlocksPerGroup: uint64(le.Uint32(sb[0x20:])),
		InodesPerGroup: uint64(le.Uint32(sb[0x28:])),
		InodeSize:      128, // revision 0's fixed size
	}
	if le.Uint32(sb[0x4C:]) >= 1 { // s_rev_level: dynamic revisions name it
		s.InodeSize = uint64(le.Uint16(sb[0x58:]))
	}
	if le.Uint32(sb[0x60:])&incompat64 != 0 {
		s.Blocks |= uint64(le.Uint32(sb[0x150:])) << 32
	}
	s.Label = string(bytes.TrimRight(sb[0x78:0x88], "\x00"))
	return s, nil
}

// Classify tells what the start of a partition holds.
func Classify(head []byte) Kind {
	switch {
	case len(head) >= sbOffset && markerTrace(head[:sbOffset]):
		return Unfinished
	case validSuperblock(head):
		return Ext4
	case allZero(head):
		return Blank
	}
	return Unknown
}

func validSuperblock(head []byte) bool {
	_, err := ParseSuperblock(head)
	return err == nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Probe reads the first ProbeSize bytes of dev (or all of it when smaller)
// and classifies them.
func Probe(dev string) (Kind, error) {
	f, err := os.Open(dev)
	if err != nil {
		return Unknown, fmt.Errorf("opening %s: %w", dev, err)
	}
	defer f.Close()
	return probe(f, dev)
}

// probe is Probe on an open partition.
func probe(r io.ReaderAt, dev string) (Kind, error) {
	head := make([]byte, ProbeSize)
	n, err := r.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return Unknown, fmt.Errorf("reading %s: %w", dev, err)
	}
	if n < sbOffset+sbSize {
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
// not cause a resize on every boot). Like Format it leaves a last block
// group under minTailBlocks unused, which the kernel's resize would drop
// anyway.
func GrowPlan(sb Superblock, partSize uint64) (blocks uint64, ok bool) {
	if sb.BlockSize == 0 {
		return 0, false
	}
	blocks = usableBlocks(partSize/sb.BlockSize, sb.BlocksPerGroup)
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

// minTailBlocks is the smallest last block group datafs gives a file
// system; a shorter tail of the partition (under 8 MiB with 4 KiB blocks)
// stays unused. mke2fs and the kernel's online resize drop a last group too
// small for a group's metadata (about 1,100 blocks here), and go-diskfs
// lays out a one-block group's backup descriptors past the end of the file
// system, which e2fsck reports.
const minTailBlocks = 2048

// usableBlocks is how many of a partition's blocks a file system with
// perGroup blocks per group uses: all but a short last group.
func usableBlocks(blocks, perGroup uint64) uint64 {
	if perGroup == 0 {
		return blocks
	}
	if tail := blocks % perGroup; tail < minTailBlocks && blocks > tail {
		return blocks - tail
	}
	return blocks
}
