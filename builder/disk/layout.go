// Package disk plans and writes Cairn's A/B GPT disk image:
//
//	1 ESP         FAT32: systemd-boot, kernel + initramfs per slot, BLS entries
//	2 CAIRN-A     squashfs root slot
//	3 CAIRN-B     squashfs root slot (empty on a fresh image)
//	4 CAIRN-DATA  zeros; cairn-init grows it to the disk and makes ext4 on first boot
//
// Partition type GUIDs follow the Discoverable Partitions Specification;
// the disk and partition GUIDs derive from a seed (the image and board
// names), so the same inputs give the same image.
package disk

import (
	"fmt"

	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/google/uuid"
)

// Partition labels. cairn-init finds partitions by these.
const (
	LabelESP  = contract.LabelESP
	LabelData = contract.LabelData
)

// Slot partition labels.
var (
	LabelA = contract.SlotA.Label()
	LabelB = contract.SlotB.Label()
)

// Discoverable Partitions Specification type GUIDs.
const (
	TypeESP  = gpt.Type(contract.TypeESP)
	TypeVar  = gpt.Type(contract.TypeVar)
	typeRoot = "root"
)

const (
	sector = 512
	align  = 1 << 20 // partitions start on MiB boundaries
	// tail leaves room for the backup GPT (33 sectors) after the last partition.
	tail = align
)

// Partition is one planned partition; offsets are in bytes.
type Partition struct {
	Index       int
	Label       string
	Type        gpt.Type
	GUID        string
	Start, Size int64
}

// Layout is a planned disk.
type Layout struct {
	GUID       string
	Size       int64
	Partitions []Partition
}

// Sizes are the partition sizes in bytes; each a multiple of 1 MiB.
type Sizes struct {
	ESP, Slot, Data int64
}

// Plan lays out the disk for arch. The seed makes the GUIDs.
func Plan(arch, seed string, s Sizes) (Layout, error) {
	rootType, ok := contract.RootTypes[arch]
	root := gpt.Type(rootType)
	if !ok {
		return Layout{}, fmt.Errorf("no root partition type for arch %q", arch)
	}
	for _, sz := range []int64{s.ESP, s.Slot, s.Data} {
		if sz <= 0 || sz%align != 0 {
			return Layout{}, fmt.Errorf("partition size %d is not a positive multiple of 1 MiB", sz)
		}
	}
	l := Layout{GUID: guid(seed, "disk")}
	off := int64(align)
	for i, p := range []struct {
		label string
		typ   gpt.Type
		size  int64
	}{
		{LabelESP, TypeESP, s.ESP},
		{LabelA, root, s.Slot},
		{LabelB, root, s.Slot},
		{LabelData, TypeVar, s.Data},
	} {
		l.Partitions = append(l.Partitions, Partition{Index: i + 1, Label: p.label, Type: p.typ, GUID: guid(seed, p.label), Start: off, Size: p.size})
		off += p.size
	}
	l.Size = off + tail
	return l, nil
}

// Get returns the partition with the label.
func (l Layout) Get(label string) Partition {
	for _, p := range l.Partitions {
		if p.Label == label {
			return p
		}
	}
	panic("disk: no partition " + label)
}

// namespace scopes Cairn's name-based GUIDs.
var namespace = uuid.MustParse("6f1c3c56-8d0f-4b8e-9a57-1b8f0c2ad7e1")

func guid(seed, what string) string {
	return uuid.NewSHA1(namespace, []byte(seed+"/"+what)).String()
}

func (l Layout) table() *gpt.Table {
	t := &gpt.Table{LogicalSectorSize: sector, PhysicalSectorSize: sector, ProtectiveMBR: true, GUID: l.GUID}
	for _, p := range l.Partitions {
		t.Partitions = append(t.Partitions, &gpt.Partition{
			Index: p.Index,
			Start: uint64(p.Start / sector),
			End:   uint64((p.Start+p.Size)/sector - 1),
			Size:  uint64(p.Size),
			Type:  p.Type,
			Name:  p.Label,
			GUID:  p.GUID,
		})
	}
	return t
}
