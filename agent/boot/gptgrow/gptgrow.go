// Package gptgrow grows the last partition of a GPT disk to the end of the
// disk: the first-boot step that lets a small image fill whatever disk it
// was flashed to.
//
// Planning is pure (Plan) and tested without a disk; Grow reads the table,
// plans, rewrites the table with go-diskfs (primary and backup, the backup
// moved to the new end of the disk) and tells the kernel the new size with
// the BLKPG_RESIZE_PARTITION ioctl, which works while other partitions of
// the disk are mounted (BLKRRPART does not).
package gptgrow

import (
	"encoding/binary"
	"fmt"
	"os"
	"unsafe"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"golang.org/x/sys/unix"
)

// Align is the boundary, in bytes, the grown partition ends on. A MiB keeps
// sizes round and the step idempotent: a disk that grew by less than this
// is left alone.
const Align = 1 << 20

// Part is one partition of the table, as Plan sees it.
type Part struct {
	Index      int    // 1-based entry number, the N in /dev/vdaN
	Name       string // GPT partition name (PARTLABEL)
	Start, End uint64 // first and last LBA, inclusive
}

// Layout is what Plan needs to know about a disk.
type Layout struct {
	SectorSize  uint64 // logical sector size in bytes
	DiskSectors uint64 // size of the disk in logical sectors
	EntryCount  uint64 // partition entries in the array (usually 128)
	EntrySize   uint64 // bytes per entry (usually 128)
	Parts       []Part
}

// Change is a planned growth of one partition.
type Change struct {
	Index          int    // partition entry to change
	Start          uint64 // its first LBA (unchanged)
	OldEnd, NewEnd uint64 // last LBA before and after
	LastUsable     uint64 // last usable LBA of the new table
}

// Plan decides how to grow the partition named label to the end of the
// disk. It returns ok=false when there is nothing to do. The partition must
// be the last one on the disk: growing it must never touch another.
func Plan(l Layout, label string) (c Change, ok bool, err error) {
	if l.SectorSize == 0 || Align%l.SectorSize != 0 {
		return Change{}, false, fmt.Errorf("sector size %d is not supported", l.SectorSize)
	}
	if l.EntryCount == 0 || l.EntrySize == 0 {
		return Change{}, false, fmt.Errorf("GPT has an empty partition entry array")
	}
	arraySectors := (l.EntryCount*l.EntrySize + l.SectorSize - 1) / l.SectorSize
	// The backup header is the last sector and its entry array sits just
	// before it; the protective MBR, primary header and array come first.
	if l.DiskSectors < 2*(arraySectors+1)+2 {
		return Change{}, false, fmt.Errorf("disk of %d sectors is too small for a GPT", l.DiskSectors)
	}
	lastUsable := l.DiskSectors - 1 - arraySectors - 1

	var target *Part
	for i := range l.Parts {
		if l.Parts[i].Name == label {
			if target != nil {
				return Change{}, false, fmt.Errorf("two partitions are named %s (entries %d and %d)", label, target.Index, l.Parts[i].Index)
			}
			target = &l.Parts[i]
		}
	}
	if target == nil {
		return Change{}, false, fmt.Errorf("no partition is named %s", label)
	}
	for _, p := range l.Parts {
		if p.Index != target.Index && p.End >= target.Start {
			return Change{}, false, fmt.Errorf("partition %s (entry %d) is not the last on the disk: entry %d (%s) ends at LBA %d after it starts; it cannot grow", label, target.Index, p.Index, p.Name, p.End)
		}
	}
	if target.End < target.Start {
		return Change{}, false, fmt.Errorf("partition %s ends (LBA %d) before it starts (LBA %d)", label, target.End, target.Start)
	}
	alignSectors := Align / l.SectorSize
	newEnd := (lastUsable+1)/alignSectors*alignSectors - 1
	if newEnd <= target.End {
		return Change{}, false, nil
	}
	return Change{Index: target.Index, Start: target.Start, OldEnd: target.End, NewEnd: newEnd, LastUsable: lastUsable}, true, nil
}

// resizePartition tells the kernel a partition's new extent; tests replace
// it.
var resizePartition = func(disk *os.File, pno int, start, length int64) error {
	p := unix.BlkpgPartition{Start: start, Length: length, Pno: int32(pno)}
	arg := unix.BlkpgIoctlArg{
		Op:      unix.BLKPG_RESIZE_PARTITION,
		Datalen: int32(unsafe.Sizeof(p)),
		Data:    (*byte)(unsafe.Pointer(&p)),
	}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, disk.Fd(), unix.BLKPG, uintptr(unsafe.Pointer(&arg)))
	if errno != 0 {
		return errno
	}
	return nil
}

// diskGeometry returns the size in bytes and the logical sector size of a
// block device or disk image.
func diskGeometry(f *os.File) (size int64, sector int64, err error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	if fi.Mode().IsRegular() {
		return fi.Size(), 512, nil
	}
	var sz uint64
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&sz))); errno != 0 {
		return 0, 0, fmt.Errorf("BLKGETSIZE64: %w", errno)
	}
	ss, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET)
	if err != nil {
		return 0, 0, fmt.Errorf("BLKSSZGET: %w", err)
	}
	return int64(sz), int64(ss), nil
}

// Grow grows the partition named label on disk (a block device such as
// /dev/vda, or an image file) to the end of the disk. It returns the change
// made, or ok=false when the partition already fills the disk.
func Grow(disk, label string) (c Change, ok bool, err error) {
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		return Change{}, false, fmt.Errorf("opening %s: %w", disk, err)
	}
	defer f.Close()
	size, sector, err := diskGeometry(f)
	if err != nil {
		return Change{}, false, fmt.Errorf("size of %s: %w", disk, err)
	}

	// go-diskfs rewrites the table with its defaults (128 entries of 128
	// bytes); refuse anything else rather than reshape a foreign table.
	hdr := make([]byte, 92)
	if _, err := f.ReadAt(hdr, sector); err != nil {
		return Change{}, false, fmt.Errorf("reading GPT header of %s: %w", disk, err)
	}
	if string(hdr[0:8]) != "EFI PART" {
		return Change{}, false, fmt.Errorf("%s has no GPT header at LBA 1", disk)
	}
	entries, entrySize := binary.LittleEndian.Uint32(hdr[80:84]), binary.LittleEndian.Uint32(hdr[84:88])
	if entries != 128 || entrySize != 128 {
		return Change{}, false, fmt.Errorf("%s: GPT has %d entries of %d bytes; only 128 of 128 can be rewritten", disk, entries, entrySize)
	}

	backend := file.New(f, false)
	table, err := gpt.Read(backend, int(sector), int(sector))
	if err != nil {
		return Change{}, false, fmt.Errorf("reading GPT of %s: %w", disk, err)
	}
	l := Layout{SectorSize: uint64(sector), DiskSectors: uint64(size / sector), EntryCount: 128, EntrySize: 128}
	for _, p := range table.Partitions {
		l.Parts = append(l.Parts, Part{Index: p.Index, Name: p.Name, Start: p.Start, End: p.End})
	}
	c, ok, err = Plan(l, label)
	if err != nil || !ok {
		return c, ok, err
	}

	parts := make([]*gpt.Partition, 0, len(table.Partitions))
	for _, p := range table.Partitions {
		np := *p
		if np.Index == c.Index {
			np.End = c.NewEnd
			np.Size = (np.End - np.Start + 1) * uint64(sector)
		}
		parts = append(parts, &np)
	}
	// A fresh Table lays out the backup header and array for the new disk
	// size; GUIDs, types, names and attributes are carried over.
	nt := &gpt.Table{
		Partitions:         parts,
		LogicalSectorSize:  int(sector),
		PhysicalSectorSize: int(sector),
		GUID:               table.GUID,
		ProtectiveMBR:      table.ProtectiveMBR,
	}
	if err := nt.Write(f, size); err != nil {
		return Change{}, false, fmt.Errorf("writing grown GPT to %s: %w", disk, err)
	}
	if err := f.Sync(); err != nil {
		return Change{}, false, fmt.Errorf("syncing %s: %w", disk, err)
	}
	start := int64(c.Start) * sector
	length := int64(c.NewEnd-c.Start+1) * sector
	if err := resizePartition(f, c.Index, start, length); err != nil {
		return c, true, fmt.Errorf("GPT of %s grown, but the kernel refused the new size of partition %d (BLKPG_RESIZE_PARTITION: %w); it takes effect on the next boot", disk, c.Index, err)
	}
	return c, true, nil
}
