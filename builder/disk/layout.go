// Package disk plans and writes Cairn's A/B GPT disk image. On UEFI boards
// (Plan):
//
//	1 ESP         FAT32: systemd-boot, kernel + initramfs per slot, BLS entries
//	2 CAIRN-A     squashfs root slot
//	3 CAIRN-B     squashfs root slot (empty on a fresh image)
//	4 CAIRN-DATA  zeros; cairn-init grows it to the disk and makes ext4 on first boot
//
// On the Raspberry Pi 4 and 5 (PlanRPi), whose firmware reads MBR
// partitions only, the same GPT with three FAT32 partitions first, which a
// hybrid MBR lists again under the same numbers (1-3, type 0x0c; entry 4 is
// the GPT's 0xEE), so that the firmware's boot_partition=2 or 3 and Linux's
// GPT partitions 2 and 3 are the same partitions:
//
//	1 CAIRN-AUTO  FAT32, RPiAutoSize: autoboot.txt (tryboot's A/B switch) and the per-node files
//	2 BOOT-A      FAT32, disk.espSize: slot a's firmware, config.txt, cmdline.txt, kernel, initramfs, DTBs
//	3 BOOT-B      FAT32, disk.espSize: slot b's (formatted, empty on a fresh image)
//	4 CAIRN-A     squashfs root slot
//	5 CAIRN-B     squashfs root slot (empty on a fresh image)
//	6 CAIRN-DATA  as on UEFI boards
//
// On U-Boot extlinux boards (PlanExtlinux: the Jetson Nano), the UEFI
// layout, with the ESP also marked legacy BIOS bootable: U-Boot's distro
// boot scans the partitions "part list -bootable" lists, which are those
// with that attribute or the ESP type (U-Boot 2020.04 and later take
// either), else partition 1. The ESP holds extlinux/extlinux.conf and
// both slots' kernels, initramfs and device trees
// (agent/bootloader/extlinux).
//
// cairn-init and the agent find the slots and CAIRN-DATA by GPT label and
// type on both, and upgrades stream into the slot partitions unchanged.
//
// Everything Write does not write is a hole in the image, but the first
// MiB of the disk and of every partition (WipeSize), empty or not, is
// written, zeros where nothing else goes: a reused card then keeps no file
// system of its old content where the image has none.
//
// Partition type GUIDs follow the Discoverable Partitions Specification;
// the disk and partition GUIDs, and the MBR's disk signature, derive from a
// seed (the image and board names), so the same inputs give the same image.
package disk

import (
	"encoding/binary"
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

// Discoverable Partitions Specification type GUIDs, and Microsoft's basic
// data type for the Raspberry Pi's FAT partitions.
const (
	TypeESP       = gpt.Type(contract.TypeESP)
	TypeVar       = gpt.Type(contract.TypeVar)
	TypeBasicData = gpt.Type(contract.TypeBasicData)
)

// RPiAutoSize is CAIRN-AUTO's size. It holds a few KiB (autoboot.txt and the
// per-node files), but go-diskfs makes FAT32 only, whose specification
// wants at least 65525 clusters (32 MiB of 512-byte clusters) and whose
// tools call a smaller one FAT16: 64 MiB leaves a margin, and is a hole in
// the image (only its FATs and directory are written).
const RPiAutoSize = 64 << 20

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
	// FAT says that Write makes a FAT32 file system labelled Label in it
	// (the ESP; the Pi's CAIRN-AUTO, BOOT-A, BOOT-B).
	FAT bool
	// MBRType, when not 0, lists the partition in a hybrid MBR under its
	// Index with this type (0x0c: FAT32 with LBA addressing).
	MBRType byte
	// LegacyBootable sets the GPT's legacy BIOS bootable attribute, which
	// U-Boot's distro boot looks for.
	LegacyBootable bool
}

// gptLegacyBootable is the GPT attribute bit "legacy BIOS bootable"
// (UEFI specification, GPT partition entry attributes, bit 2).
const gptLegacyBootable = 1 << 2

// Layout is a planned disk.
type Layout struct {
	GUID       string
	Size       int64
	Partitions []Partition
	// MBRSignature is the hybrid MBR's disk signature (bytes 440-443), for
	// layouts with partitions in the MBR; the firmware's and Linux's
	// PARTUUID=xxxxxxxx-NN.
	MBRSignature uint32
}

// mbrFAT32LBA is the MBR partition type of FAT32 addressed by LBA.
const mbrFAT32LBA = 0x0c

// planned is a partition to lay out.
type planned struct {
	label   string
	typ     gpt.Type
	size    int64
	fat     bool
	mbrType byte
}

// Sizes are the partition sizes in bytes; each a multiple of 1 MiB.
type Sizes struct {
	ESP, Slot, Data int64
}

// Plan lays out the UEFI disk for arch. The seed makes the GUIDs.
func Plan(arch, seed string, s Sizes) (Layout, error) {
	return plan(arch, seed, s, func(root gpt.Type) []planned {
		return []planned{
			{LabelESP, TypeESP, s.ESP, true, 0},
			{LabelA, root, s.Slot, false, 0},
			{LabelB, root, s.Slot, false, 0},
			{LabelData, TypeVar, s.Data, false, 0},
		}
	})
}

// PlanExtlinux lays out a U-Boot extlinux board's disk for arch: Plan's,
// with the ESP legacy BIOS bootable.
func PlanExtlinux(arch, seed string, s Sizes) (Layout, error) {
	l, err := Plan(arch, seed, s)
	if err != nil {
		return Layout{}, err
	}
	l.Partitions[0].LegacyBootable = true
	return l, nil
}

// PlanRPi lays out the Raspberry Pi's disk for arch: CAIRN-AUTO
// (RPiAutoSize), BOOT-A and BOOT-B (s.ESP each), in the GPT and in a
// hybrid MBR, then the slots and CAIRN-DATA in the GPT only.
func PlanRPi(arch, seed string, s Sizes) (Layout, error) {
	l, err := plan(arch, seed, s, func(root gpt.Type) []planned {
		return []planned{
			{contract.RPiAutoLabel, TypeBasicData, RPiAutoSize, true, mbrFAT32LBA},
			{contract.SlotA.RPiBootLabel(), TypeBasicData, s.ESP, true, mbrFAT32LBA},
			{contract.SlotB.RPiBootLabel(), TypeBasicData, s.ESP, true, mbrFAT32LBA},
			{LabelA, root, s.Slot, false, 0},
			{LabelB, root, s.Slot, false, 0},
			{LabelData, TypeVar, s.Data, false, 0},
		}
	})
	if err != nil {
		return Layout{}, err
	}
	l.MBRSignature = mbrSignature(seed)
	return l, nil
}

// plan lays out parts, given the arch's root type, from the first MiB on.
func plan(arch, seed string, s Sizes, parts func(root gpt.Type) []planned) (Layout, error) {
	rootType, ok := contract.RootTypes[arch]
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
	for i, p := range parts(gpt.Type(rootType)) {
		l.Partitions = append(l.Partitions, Partition{Index: i + 1, Label: p.label, Type: p.typ, GUID: guid(seed, p.label), Start: off, Size: p.size, FAT: p.fat, MBRType: p.mbrType})
		off += p.size
	}
	l.Size = off + tail
	return l, nil
}

// WipeSize is how much of the disk's start and of every partition's start
// an image holds written (zeros wherever nothing else goes), so that the
// block map lists it. cairn flash and bmaptool copy write only mapped
// blocks: on a card that held anything before, a hole in the image keeps
// the old bytes. Left as holes, an empty slot B would keep an old root's
// squashfs and CAIRN-DATA an old node's ext4, which cairn-init would
// mount as /var (it formats only a partition whose first
// datafs.ProbeSize bytes are zeros). 1 MiB covers every signature the
// kernel, blkid and cairn-init read at the start of a partition (ext4's
// superblock at 1 KiB; squashfs, FAT, XFS, LUKS and an MBR at 0; ISO
// 9660 at 32 KiB; btrfs at 64 KiB; ZFS's first labels) and, at the
// disk's start, the space before the first partition around the MBR and
// the GPT. A partition's end is left as it is: nothing Cairn reads looks
// there (only RAID superblocks and ZFS's last labels, which blkid reports
// and no Cairn node uses), and CAIRN-DATA's end moves when cairn-init
// grows it to the end of the disk.
const WipeSize = 1 << 20

// Extent is a range of the disk, in bytes.
type Extent struct {
	Off, Len int64
}

// Wiped are the ranges Write writes whole, in disk order: the space
// before the first partition, and the first WipeSize bytes (or all) of
// each partition.
func (l Layout) Wiped() []Extent {
	var w []Extent
	if len(l.Partitions) > 0 {
		w = append(w, Extent{0, min(WipeSize, l.Partitions[0].Start)})
	}
	for _, p := range l.Partitions {
		w = append(w, Extent{p.Start, min(WipeSize, p.Size)})
	}
	return w
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

// mbrSignature is a disk signature derived from seed, never 0 (which
// tools read as "none").
func mbrSignature(seed string) uint32 {
	u := uuid.NewSHA1(namespace, []byte(seed+"/mbr"))
	if sig := binary.LittleEndian.Uint32(u[:4]); sig != 0 {
		return sig
	}
	return 1
}

func (l Layout) table() *gpt.Table {
	t := &gpt.Table{LogicalSectorSize: sector, PhysicalSectorSize: sector, ProtectiveMBR: true, GUID: l.GUID}
	for _, p := range l.Partitions {
		var attrs uint64
		if p.LegacyBootable {
			attrs |= gptLegacyBootable
		}
		t.Partitions = append(t.Partitions, &gpt.Partition{
			Attributes: attrs,
			Index:      p.Index,
			Start:      uint64(p.Start / sector),
			End:        uint64((p.Start+p.Size)/sector - 1),
			Size:       uint64(p.Size),
			Type:       p.Type,
			Name:       p.Label,
			GUID:       p.GUID,
		})
	}
	return t
}
