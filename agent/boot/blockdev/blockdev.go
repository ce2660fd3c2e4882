// Package blockdev finds block devices and partitions through sysfs
// (/sys/class/block/*/uevent), without udev.
//
//	p, err := blockdev.WaitPartition(ctx, "CAIRN-A") // polls until it appears
//	// p.Path == "/dev/vda2", p.Disk == "/dev/vda", p.Number == 2
package blockdev

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// SysClassBlock and DevDir are the sysfs and device directories read; tests
// point them at a fake tree.
var (
	SysClassBlock = "/sys/class/block"
	DevDir        = "/dev"
)

// PollInterval is how often WaitPartition looks again.
var PollInterval = 100 * time.Millisecond

// Partition is a partition found by its GPT partition label (PARTNAME).
type Partition struct {
	Label  string // GPT partition name, e.g. CAIRN-DATA
	Name   string // kernel name, e.g. vda4
	Path   string // device node, e.g. /dev/vda4
	Disk   string // device node of the whole disk, e.g. /dev/vda
	Number int    // partition number on the disk (1-based), e.g. 4
}

// ParseUevent parses a sysfs uevent file: KEY=value lines.
func ParseUevent(b []byte) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok && k != "" {
			m[k] = v
		}
	}
	return m
}

// ErrNotFound means no partition carries the label (yet).
var ErrNotFound = errors.New("partition not found")

// FindPartition looks once for the partition whose GPT name is label. Two
// partitions with the same label are an error: booting the wrong one would
// be worse than not booting.
func FindPartition(label string) (Partition, error) {
	entries, err := os.ReadDir(SysClassBlock)
	if err != nil {
		return Partition{}, fmt.Errorf("listing block devices: %w", err)
	}
	var found []Partition
	for _, e := range entries {
		dir := filepath.Join(SysClassBlock, e.Name())
		b, err := os.ReadFile(filepath.Join(dir, "uevent"))
		if err != nil {
			continue
		}
		u := ParseUevent(b)
		if u["DEVTYPE"] != "partition" || u["PARTNAME"] != label || u["DEVNAME"] == "" {
			continue
		}
		p := Partition{Label: label, Name: u["DEVNAME"], Path: filepath.Join(DevDir, u["DEVNAME"])}
		p.Number, _ = strconv.Atoi(u["PARTN"])
		// The parent directory of a partition in sysfs is its disk.
		real, err := filepath.EvalSymlinks(dir)
		if err != nil {
			return Partition{}, fmt.Errorf("resolving %s: %w", dir, err)
		}
		db, err := os.ReadFile(filepath.Join(filepath.Dir(real), "uevent"))
		if err != nil {
			return Partition{}, fmt.Errorf("reading the disk of %s: %w", p.Name, err)
		}
		du := ParseUevent(db)
		if du["DEVTYPE"] != "disk" || du["DEVNAME"] == "" {
			return Partition{}, fmt.Errorf("parent of %s is not a disk (uevent %v)", p.Name, du)
		}
		p.Disk = filepath.Join(DevDir, du["DEVNAME"])
		found = append(found, p)
	}
	switch len(found) {
	case 0:
		return Partition{}, fmt.Errorf("%w: no partition is labeled %s", ErrNotFound, label)
	case 1:
		return found[0], nil
	}
	var names []string
	for _, p := range found {
		names = append(names, p.Path)
	}
	sort.Strings(names)
	return Partition{}, fmt.Errorf("%d partitions are labeled %s (%s): remove the other disk or relabel it", len(found), label, strings.Join(names, ", "))
}

// WaitPartition polls FindPartition until the partition appears, an error
// other than ErrNotFound happens, or ctx ends. Drivers probe disks
// asynchronously after their modules load, so the first looks often miss.
func WaitPartition(ctx context.Context, label string) (Partition, error) {
	for {
		p, err := FindPartition(label)
		if !errors.Is(err, ErrNotFound) {
			return p, err
		}
		select {
		case <-ctx.Done():
			return Partition{}, fmt.Errorf("%w (waited for it: %w)", err, ctx.Err())
		case <-time.After(PollInterval):
		}
	}
}

// SizeBytes returns the size of the block device named name (e.g. vda4)
// from sysfs, which counts 512-byte sectors whatever the device's own
// sector size is.
func SizeBytes(name string) (int64, error) {
	b, err := os.ReadFile(filepath.Join(SysClassBlock, name, "size"))
	if err != nil {
		return 0, fmt.Errorf("reading size of %s: %w", name, err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", name, err)
	}
	return n * 512, nil
}
