package datafs

import (
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/ext4"
	"golang.org/x/sys/unix"
)

// MountFlags and MountData say how CAIRN-DATA is mounted at /var.
//
// nosuid and nodev: nothing on /var is meant to be a set-uid program or a
// device node (containers' own mounts carry their own flags).
//
// errors=remount-ro: when the kernel finds the file system inconsistent it
// makes /var read-only. For a node nobody can reach, the alternatives are
// worse:
//   - continue (the kernel's default) keeps writing into a file system the
//     kernel knows is damaged, so one bad block grows into cross-linked
//     files, a corrupt Kubernetes datastore or lost container images, with
//     nothing to show for it but a kernel log line.
//   - panic reboots into the same damage: the image has no e2fsck to
//     repair it, so the node would loop (panic, boot, mount, meet the same
//     block, panic), and every loop spends a boot-counting try, so a disk
//     fault during an upgrade's trial would roll the upgrade back.
//
// Read-only stops the damage at the first error and keeps the node up:
// cairn-init, the agent and its API run from the read-only slot and memory,
// so the node stays reachable, reports the disk as failed and can be
// rebooted (the next boot mounts /var read-write again: the kernel only
// warns about errors it recorded) or reflashed by someone who decides to.
// Format also writes remount-ro into the superblock, so the file system
// keeps the behaviour wherever it is mounted.
const MountFlags = unix.MS_NOATIME | unix.MS_NOSUID | unix.MS_NODEV

// MountData returns the options to mount the ext4 whose superblock is sb
// with: errors=remount-ro (see MountFlags) and, for one an older Cairn
// made with inodes per group that do not fill whole inode table blocks,
// noinit_itable. On those the kernel's ext4lazyinit counts one table block
// fewer than a group uses and records an error on every boot ("Something
// is wrong with group 0"), which with errors=remount-ro would make /var
// read-only seconds into each boot; go-diskfs wrote their tables whole,
// so there is nothing left for it to initialise.
func MountData(sb Superblock) string {
	const opts = "errors=remount-ro"
	if sb.InodeSize > 0 && sb.BlockSize%sb.InodeSize == 0 && sb.InodesPerGroup%(sb.BlockSize/sb.InodeSize) != 0 {
		return opts + ",noinit_itable"
	}
	return opts
}

// The geometry Format asks go-diskfs for.
const (
	blockSize      = 4096          // bytes per block, whatever the size (see Format)
	blocksPerGroup = 8 * blockSize // one block of block bitmap per group
	bytesPerInode  = 8192          // go-diskfs's default (mke2fs's is 16384)
	inodeSize      = 256           // go-diskfs's only inode size
	inodesPerBlock = blockSize / inodeSize
	minBlocks      = 16 << 20 / blockSize // room for the journal and some data
)

// marker fills the partition's first sector while Format works (see the
// package doc). Every byte is non-zero, so a torn write of it, or of the
// zeros that replace it, leaves a recognisable mix.
var marker = func() (m [512]byte) {
	const text = "CAIRN-DATA: cairn-init is making an ext4 here; if this is still here, it was cut off and is made again on the next boot. "
	for i := range m {
		m[i] = text[i%len(text)]
	}
	return m
}()

// markerTrace reports whether the first KiB of a partition holds the
// marker or a torn write of it: a first sector of zeros and marker bytes,
// at least one of them marker, and a second sector of zeros.
func markerTrace(head []byte) bool {
	found := false
	for i, c := range head[:len(marker)] {
		switch c {
		case 0:
		case marker[i]:
			found = true
		default:
			return false
		}
	}
	return found && allZero(head[len(marker):sbOffset])
}

// disk is the partition Format writes: an *os.File, or in tests a file that
// loses power. go-diskfs writes it through WriteAt only.
type disk interface {
	fs.File
	io.ReaderAt
	io.WriterAt
	io.Seeker
	Sync() error
}

// Format makes an ext4 filesystem of (up to) size bytes on dev. Callers
// must have seen Probe return Blank or Unfinished: Format itself checks
// again and refuses anything else, so a caller's bug cannot wipe data. A
// cut at any instant leaves a partition that Probe calls Blank, Unfinished
// or (once Format has returned) Ext4: see the package doc.
//
// The ext4 has 4 KiB blocks whatever the size: go-diskfs would pick 1 KiB
// for small partitions, and its 1 KiB layout cannot be grown online. It has
// no resize inode: go-diskfs lays out its reserved GDT blocks in a way the
// kernel's online resize rejects ("reserved block not at offset"); without
// it the kernel grows within the existing descriptor blocks and converts
// to meta_bg beyond. Its inodes per group fill whole inode table blocks:
// go-diskfs rounds them to a multiple of 8 only, and with 16 inodes per
// block the kernel's ext4lazyinit then finds one more table block in use
// than a group has ("Something is wrong with group 0: used itable blocks"),
// records an error and leaves the file system "clean with errors".
func Format(dev string, size int64) error {
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", dev, err)
	}
	defer f.Close()
	return format(f, dev, size)
}

// format is Format on an open partition named dev.
func format(d disk, dev string, size int64) error {
	kind, err := probe(d, dev)
	if err != nil {
		return err
	}
	if kind != Blank && kind != Unfinished {
		return fmt.Errorf("refusing to format %s: it holds %s data, not zeros", dev, kind)
	}
	g, err := plan(size)
	if err != nil {
		return fmt.Errorf("making ext4 on %s: %w", dev, err)
	}
	if err := writeSynced(d, marker[:]); err != nil {
		return fmt.Errorf("marking %s as being formatted: %w", dev, err)
	}
	if err := g.make(d); err != nil {
		return fmt.Errorf("making ext4 on %s: %w", dev, err)
	}
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dev, err)
	}
	if err := writeSynced(d, make([]byte, len(marker))); err != nil {
		return fmt.Errorf("removing the formatting marker from %s: %w (the next boot formats it again)", dev, err)
	}
	return nil
}

// writeSynced writes b at the start of d and waits until it is on the
// medium.
func writeSynced(d disk, b []byte) error {
	if _, err := d.WriteAt(b, 0); err != nil {
		return err
	}
	return d.Sync()
}

// geometry is the size of the ext4 Format makes.
type geometry struct {
	blocks         uint64 // file system size in blocks
	inodesPerGroup uint64
}

func (g geometry) groups() uint64 { return (g.blocks + blocksPerGroup - 1) / blocksPerGroup }

// plan chooses the geometry for a partition of size bytes: every block but
// a short last group, one inode per bytesPerInode, rounded up to whole
// inode table blocks in each group.
func plan(size int64) (geometry, error) {
	blocks := usableBlocks(uint64(max(size, 0))/blockSize, blocksPerGroup)
	if blocks < minBlocks {
		return geometry{}, fmt.Errorf("the partition has %d MiB, too small for /var (it needs at least %d MiB)", size>>20, minBlocks*blockSize>>20)
	}
	g := geometry{blocks: blocks}
	perGroup := (blocks*blockSize/bytesPerInode + g.groups() - 1) / g.groups()
	g.inodesPerGroup = (perGroup + inodesPerBlock - 1) / inodesPerBlock * inodesPerBlock
	if g.inodesPerGroup*g.groups() > math.MaxUint32 {
		return geometry{}, fmt.Errorf("the partition has %d GiB, more than ext4's 2^32 inodes at one per %d KiB", size>>30, bytesPerInode>>10)
	}
	return g, nil
}

// make writes the file system with go-diskfs, checks that it made the
// geometry asked for and sets what go-diskfs has no option for.
func (g geometry) make(d disk) error {
	_, err := ext4.Create(file.New(d, false), int64(g.blocks*blockSize), 0, 512, &ext4.Params{
		VolumeName:      Label,
		SectorsPerBlock: blockSize / 512,
		BlocksPerGroup:  blocksPerGroup,
		InodeCount:      uint32(g.inodesPerGroup * g.groups()),
		Features:        []ext4.FeatureOpt{ext4.WithFeatureReservedGDTBlocksForExpansion(false)},
	})
	if err != nil {
		return err
	}
	head := make([]byte, sbOffset+sbSize)
	if _, err := d.ReadAt(head, 0); err != nil {
		return fmt.Errorf("reading back the superblock: %w", err)
	}
	sb, err := ParseSuperblock(head)
	if err != nil {
		return fmt.Errorf("reading back the superblock: %w", err)
	}
	want := Superblock{Blocks: g.blocks, BlockSize: blockSize, BlocksPerGroup: blocksPerGroup, InodesPerGroup: g.inodesPerGroup, InodeSize: inodeSize, Label: Label}
	if sb != want {
		return fmt.Errorf("go-diskfs made %+v, not the %+v asked for (has go-diskfs changed its layout?)", sb, want)
	}
	raw := head[sbOffset:]
	if binary.LittleEndian.Uint32(raw[0x64:])&roCompatMetadataCsum != 0 {
		return fmt.Errorf("go-diskfs made metadata checksums, which datafs's superblock edit would break")
	}
	binary.LittleEndian.PutUint16(raw[0x36:], 0xFFFF)   // s_max_mnt_count -1: no "maximal mount count reached" after 100 boots
	binary.LittleEndian.PutUint16(raw[0x3C:], errorsRO) // s_errors: see MountFlags
	_, err = d.WriteAt(raw, sbOffset)
	return err
}

const (
	roCompatMetadataCsum = 0x400 // EXT4_FEATURE_RO_COMPAT_METADATA_CSUM
	errorsRO             = 2     // EXT4_ERRORS_RO
)
