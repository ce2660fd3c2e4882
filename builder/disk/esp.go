package disk

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/cairn-edge/cairn/agent/contract"
	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
	"github.com/diskfs/go-diskfs/partition/gpt"
)

// maxESPFile bounds what ESP.ReadFile returns: the per-node files are a
// few KiB; a larger one is not ours.
const maxESPFile = 1 << 20

// ESP is the partition of a Cairn disk (an image file or a block device)
// that holds the per-node files in its root: the ESP, or on a Raspberry
// Pi's disk CAIRN-AUTO, opened to read and write them.
type ESP struct {
	f     *os.File
	fat   *fat32.FileSystem
	start int64
}

// OpenESP opens the Cairn disk in f, which must be open for reading and
// writing. It refuses a disk whose partition table is not Cairn's (an
// ESP and both root slots, by label and type), so a mistyped device is
// never written.
func OpenESP(f *os.File) (*ESP, error) {
	d, err := diskfs.OpenBackend(file.New(f, false))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	pt, err := d.GetPartitionTable()
	if err != nil {
		return nil, fmt.Errorf("%s has no partition table this can read (%v): is it a disk Cairn built?", f.Name(), err)
	}
	table, ok := pt.(*gpt.Table)
	if !ok {
		return nil, fmt.Errorf("%s has an MBR partition table, not Cairn's GPT: is it a disk Cairn built?", f.Name())
	}
	var esp *gpt.Partition
	labels := map[string]bool{}
	for _, p := range table.Partitions {
		labels[p.Name] = true
		// The per-node files are in the ESP on UEFI disks, in CAIRN-AUTO
		// (which both slots share) on the Raspberry Pi's.
		if p.Name == LabelESP && strings.EqualFold(string(p.Type), string(TypeESP)) ||
			p.Name == contract.RPiAutoLabel && strings.EqualFold(string(p.Type), string(TypeBasicData)) {
			esp = p
		}
	}
	if esp == nil || !labels[LabelA] || !labels[LabelB] {
		return nil, fmt.Errorf("%s is not a Cairn disk: its partition table lacks %s (or %s), %s or %s (wrong device or file?)", f.Name(), LabelESP, contract.RPiAutoLabel, LabelA, LabelB)
	}
	start := int64(esp.Start) * sector
	fat, err := fat32.Read(d.Backend, int64(esp.Size), start, sector)
	if err != nil {
		return nil, fmt.Errorf("%s: the ESP is not a FAT32 Cairn can read: %w", f.Name(), err)
	}
	return &ESP{f: f, fat: fat, start: start}, nil
}

// ReadFile returns the file name (in the ESP's root); an error wrapping
// fs.ErrNotExist when there is none.
func (e *ESP) ReadFile(name string) ([]byte, error) {
	if err := checkRootName(name); err != nil {
		return nil, err
	}
	if !e.exists(name) {
		return nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
	}
	src, err := e.fat.OpenFile("/"+name, os.O_RDONLY)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	defer src.Close()
	b, err := io.ReadAll(io.LimitReader(src, maxESPFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(b) > maxESPFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, maxESPFile)
	}
	return b, nil
}

// exists reports whether the root holds name. (go-diskfs's Stat misses
// files with long names; FAT compares names without case.)
func (e *ESP) exists(name string) bool {
	entries, err := e.fat.ReadDir(".")
	if err != nil {
		return false
	}
	for _, d := range entries {
		if strings.EqualFold(d.Name(), name) {
			return true
		}
	}
	return false
}

// WriteFile writes data as name in the ESP's root, replacing any file of
// that name.
func (e *ESP) WriteFile(name string, data []byte) error {
	if err := checkRootName(name); err != nil {
		return err
	}
	dst, err := e.fat.OpenFile("/"+name, os.O_CREATE|os.O_RDWR|os.O_TRUNC)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if _, err := dst.Write(data); err != nil {
		dst.Close()
		return fmt.Errorf("%s: %w", name, err)
	}
	return dst.Close()
}

// Close repairs what go-diskfs leaves differently from the FAT
// specification (as Write does) and flushes the disk.
func (e *ESP) Close() error {
	if err := fixFAT32(offsetRW{e.f, e.start}); err != nil {
		return fmt.Errorf("ESP: %w", err)
	}
	return e.f.Sync()
}

// checkRootName accepts a plain file name, no directories.
func checkRootName(name string) error {
	if name == "" || name != path.Base(name) || name == "." || name == ".." || strings.ContainsAny(name, `/\`) {
		return errors.New("ESP: " + name + " is not a file name in the ESP's root")
	}
	return nil
}
