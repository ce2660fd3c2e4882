// Package firmware holds one part per board family: what the family's
// firmware needs on the boot medium. A part chooses the partition rules
// (the table and what goes first) and the files of its FAT boot
// partitions — the boot loader and each slot's kernel, initramfs and
// command line — written through the family's A/B boot-loader
// implementation (agent/bootloader), the same code the node runs for
// upgrades.
//
//	part, err := firmware.For(img, firmware.Inputs{Kernel: k, Loader: l})
//	layout, err := part.Layout(seed, sizes)
//	fats, err := part.BootPartitions(boot, initrd) // partition label → tree
//
// The families:
//
//   - uefi (PCs, Arm servers, QEMU): one ESP with systemd-boot, both
//     slots' kernels and Boot Loader Specification entries (disk.Plan).
//   - rpi (Raspberry Pi 4 and 5): the firmware's tryboot. Three FAT
//     partitions in the GPT and a hybrid MBR (disk.PlanRPi): CAIRN-AUTO
//     with autoboot.txt and the per-node files; BOOT-A with slot a's
//     firmware (rpi.firmware.files), DTBs (rpi.dtbs, from the kernel
//     image's /boot/dtbs), overlays, config.txt, cmdline.txt, kernel and
//     initramfs, as agent/bootloader/tryboot's NewCard lays them down;
//     BOOT-B formatted and empty until an update.
//   - extlinux (the Jetson Nano): U-Boot reading extlinux/extlinux.conf
//     from the ESP, which the UEFI layout keeps, legacy BIOS bootable
//     (disk.PlanExtlinux): the menu, the trial flag and slot a's kernel,
//     initramfs and device tree (extlinux.fdt, from the kernel image's
//     /boot/dtbs), as agent/bootloader/extlinux's NewESP lays them down.
//     A/B by agent-side rollback only.
package firmware

import (
	"fmt"
	"slices"
	"strings"

	"github.com/cairn-edge/cairn/builder/disk"
	"github.com/cairn-edge/cairn/builder/fstree"
	"github.com/cairn-edge/cairn/builder/rootfs"
	"github.com/cairn-edge/cairn/builder/spec"
)

// Boot is what the boot loader starts for a slot.
type Boot struct {
	// Kernel is the host path of the kernel image.
	Kernel string
	// Cmdline is the kernel command line without the slot parameter,
	// which the boot loader adds for each slot.
	Cmdline []string
	// Title is shown in boot menus; Version is the OS version.
	Title, Version string
}

// Part is one board family's firmware.
type Part interface {
	// Family is the board file's firmware value.
	Family() string
	// Layout plans the partition table for a disk whose GUIDs derive from seed.
	Layout(seed string, sizes disk.Sizes) (disk.Layout, error)
	// BootPartitions are the FAT partitions of a fresh image, by label:
	// the boot loader and slot A's boot files, slot A committed as the
	// default. Every FAT partition of Layout is in it.
	BootPartitions(b Boot, initrd []byte) (map[string]*fstree.Tree, error)
}

// BoardFiler is a Part whose slots have a boot partition each, holding the
// board's files (rpi): the update artifact carries the same files, so an
// upgrade's Install on the node writes what the builder wrote on a fresh
// image.
type BoardFiler interface {
	// BoardFiles are the board files a slot's Install is given
	// (bootloader.BootFiles.Files), sorted by name.
	BoardFiles() ([]BoardFile, error)
}

// BoardFile is one board file, read into memory (firmware, DTBs and
// overlays are a few MiB).
type BoardFile struct {
	// Name is its path on the boot partition, as "overlays/x.dtbo".
	Name string
	Data []byte
}

// Inputs are the unpacked input images a part reads files from, inside
// them only.
type Inputs struct {
	// Kernel is the kernel image (the DTBs under /boot/dtbs); KernelRef
	// names it in errors.
	Kernel    *rootfs.Tree
	KernelRef string
	// Loader is the boot loader image (uefi); nil if the board names none.
	Loader *rootfs.Tree
	// Firmware is the board's firmware image (rpi.firmware.image); nil if
	// the board names none.
	Firmware *rootfs.Tree
}

// families maps a board's firmware value to the function that makes its part.
var families = map[string]func(img *spec.Image, in Inputs) (Part, error){
	"uefi":     newUEFI,
	"rpi":      newRPi,
	"extlinux": newExtlinux,
}

// Families are the firmware values a board may name.
func Families() []string {
	var names []string
	for n := range families {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// For returns the part of the image's board's family.
func For(img *spec.Image, in Inputs) (Part, error) {
	b := img.Board
	mk, ok := families[b.Firmware]
	if !ok {
		return nil, fmt.Errorf("%s: firmware %q is not one Cairn knows (use one of %s)", b.File(), b.Firmware, strings.Join(Families(), ", "))
	}
	return mk(img, in)
}
