package disk

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/builder/fstree"
	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/backend"
	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
)

// Contents is what goes into the partitions.
type Contents struct {
	// FAT maps a FAT partition's label to the tree written into it (the
	// ESP's; the Pi's CAIRN-AUTO, BOOT-A, BOOT-B). A FAT partition without
	// a tree gets an empty file system.
	FAT map[string]*fstree.Tree
	// Slots are the paths of the squashfs images for the slots that get
	// one; a slot without stays zeros (empty until an update fills it).
	Slots map[contract.Slot]string
	// Epoch stamps the FAT directory entries.
	Epoch time.Time
}

// Write writes the image to the open, empty file f: zeros over the
// layout's Wiped ranges, then the partition table (and the hybrid MBR, if
// l has one), the FAT file systems and the slots' images; everything else
// stays a hole (zeros).
func Write(f *os.File, l Layout, c Contents) error {
	for label := range c.FAT {
		if !l.hasFAT(label) {
			return fmt.Errorf("disk: a tree for %s, which is no FAT partition of the layout (a bug)", label)
		}
	}
	if err := f.Truncate(l.Size); err != nil {
		return err
	}
	if err := wipe(f, l); err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	d, err := diskfs.OpenBackend(file.New(f, false))
	if err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	if err := d.Partition(l.table()); err != nil {
		return fmt.Errorf("disk: partition table: %w", err)
	}
	if err := writeHybridMBR(f, l); err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	for _, p := range l.Partitions {
		if !p.FAT {
			continue
		}
		tree := c.FAT[p.Label]
		if tree == nil {
			tree = fstree.New()
		}
		if err := writeFAT(d.Backend, p, tree, c.Epoch); err != nil {
			return fmt.Errorf("disk: %s: %w", p.Label, err)
		}
	}
	for _, slot := range contract.Slots {
		if img, ok := c.Slots[slot]; ok {
			if err := writeSlot(f, l.Get(slot.Label()), img); err != nil {
				return fmt.Errorf("disk: slot %s: %w", slot, err)
			}
		}
	}
	return nil
}

// wipe writes zeros over l's Wiped ranges, before anything else is
// written, so that those bytes are written (mapped in the block map) even
// where nothing else goes.
func wipe(f *os.File, l Layout) error {
	zeros := make([]byte, WipeSize)
	for _, e := range l.Wiped() {
		if _, err := f.WriteAt(zeros[:e.Len], e.Off); err != nil {
			return fmt.Errorf("zeroing %d bytes at %d: %w", e.Len, e.Off, err)
		}
	}
	return nil
}

// writeSlot copies a slot image into its partition.
func writeSlot(f *os.File, p Partition, img string) error {
	src, err := os.Open(img)
	if err != nil {
		return err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return err
	}
	if st.Size() > p.Size {
		return fmt.Errorf("the slot image is %d MiB but the slot partition holds %d MiB: raise disk.slotSize in the image spec", (st.Size()+(1<<20)-1)>>20, p.Size>>20)
	}
	_, err = io.Copy(io.NewOffsetWriter(f, p.Start), src)
	return err
}

// hasFAT tells whether l has a FAT partition labelled label.
func (l Layout) hasFAT(label string) bool {
	for _, p := range l.Partitions {
		if p.FAT && p.Label == label {
			return true
		}
	}
	return false
}

// writeFAT makes the FAT32 file system, labelled as the partition, and
// copies the tree into it.
func writeFAT(b backend.Storage, p Partition, tree *fstree.Tree, epoch time.Time) error {
	// go-diskfs stamps FAT entries with SOURCE_DATE_EPOCH when it is set.
	if os.Getenv("SOURCE_DATE_EPOCH") == "" {
		os.Setenv("SOURCE_DATE_EPOCH", strconv.FormatInt(epoch.Unix(), 10))
		defer os.Unsetenv("SOURCE_DATE_EPOCH")
	}
	fat, err := fat32.Create(b, p.Size, p.Start, sector, p.Label, true)
	if err != nil {
		return err
	}
	for _, e := range tree.Entries() {
		name := "/" + e.Path
		switch {
		case e.Mode.IsDir():
			if err := fat.Mkdir(name); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		case e.Mode.IsRegular():
			if err := copyInto(fat, name, e); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		default:
			return fmt.Errorf("%s: FAT holds only files and directories", name)
		}
	}
	rw, err := b.Writable()
	if err != nil {
		return err
	}
	return fixFAT32(offsetRW{rw, p.Start})
}

// offsetRW addresses a partition inside the disk file.
type offsetRW struct {
	f   backend.WritableFile
	off int64
}

func (o offsetRW) ReadAt(p []byte, off int64) (int, error)  { return o.f.ReadAt(p, o.off+off) }
func (o offsetRW) WriteAt(p []byte, off int64) (int, error) { return o.f.WriteAt(p, o.off+off) }

func copyInto(fat *fat32.FileSystem, name string, e *fstree.Entry) error {
	src, err := e.Open()
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := fat.OpenFile(name, os.O_CREATE|os.O_RDWR)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}
