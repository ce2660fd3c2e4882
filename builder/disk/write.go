package disk

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/cairn-edge/cairn/builder/fstree"
	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/backend"
	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
)

// Contents is what goes into the partitions.
type Contents struct {
	// ESP is the tree written to the EFI system partition.
	ESP *fstree.Tree
	// SlotA is the path of the squashfs image for CAIRN-A.
	SlotA string
	// Epoch stamps the FAT directory entries.
	Epoch time.Time
}

// Write writes the image to the open, empty file f: partition table, ESP
// file system and slot A; everything else stays a hole (zeros).
func Write(f *os.File, l Layout, c Contents) error {
	if err := f.Truncate(l.Size); err != nil {
		return err
	}
	d, err := diskfs.OpenBackend(file.New(f, false))
	if err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	if err := d.Partition(l.table()); err != nil {
		return fmt.Errorf("disk: partition table: %w", err)
	}
	esp := l.Get(LabelESP)
	if err := writeESP(d.Backend, esp, c.ESP, c.Epoch); err != nil {
		return fmt.Errorf("disk: ESP: %w", err)
	}
	slot := l.Get(LabelA)
	src, err := os.Open(c.SlotA)
	if err != nil {
		return err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return err
	}
	if st.Size() > slot.Size {
		return fmt.Errorf("the slot image is %d MiB but the slot partition holds %d MiB: raise disk.slotSize in the image spec", (st.Size()+(1<<20)-1)>>20, slot.Size>>20)
	}
	if _, err := io.Copy(io.NewOffsetWriter(f, slot.Start), src); err != nil {
		return fmt.Errorf("disk: slot A: %w", err)
	}
	return nil
}

// writeESP makes the FAT32 file system and copies the tree into it.
func writeESP(b backend.Storage, p Partition, tree *fstree.Tree, epoch time.Time) error {
	// go-diskfs stamps FAT entries with SOURCE_DATE_EPOCH when it is set.
	if os.Getenv("SOURCE_DATE_EPOCH") == "" {
		os.Setenv("SOURCE_DATE_EPOCH", strconv.FormatInt(epoch.Unix(), 10))
		defer os.Unsetenv("SOURCE_DATE_EPOCH")
	}
	fat, err := fat32.Create(b, p.Size, p.Start, sector, LabelESP, true)
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
