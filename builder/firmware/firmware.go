// Package firmware holds one part per board family: what the family's
// firmware needs on the boot medium. A part chooses the partition rules
// (the table and what goes first) and the files of the boot partition —
// the boot loader and each slot's kernel, initramfs and command line —
// written through the family's A/B boot-loader implementation
// (agent/bootloader), the same code the node runs for upgrades.
//
//	part, err := firmware.For(img.Board, loaderTree)   // "uefi" → systemd-boot on an ESP
//	layout, err := part.Layout(seed, sizes)
//	esp, err := part.BootPartition(boot, initrd)
//
// Today there is one family, uefi (PCs, Arm servers, QEMU); rpi (the
// Raspberry Pi firmware's tryboot) and uboot (extlinux) follow.
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
	// BootPartition is the boot partition of a fresh image: the boot
	// loader and slot A's boot files, slot A committed as the default.
	BootPartition(b Boot, initrd []byte) (*fstree.Tree, error)
}

// families maps a board's firmware value to the function that makes its part.
var families = map[string]func(b *spec.Board, loaderTree *rootfs.Tree) (Part, error){
	"uefi": newUEFI,
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

// For returns the part of the board's family. loaderTree is the unpacked
// boot loader image the board names, read inside it only.
func For(b *spec.Board, loaderTree *rootfs.Tree) (Part, error) {
	mk, ok := families[b.Firmware]
	if !ok {
		return nil, fmt.Errorf("%s: firmware %q is not one Cairn knows (use one of %s)", b.File(), b.Firmware, strings.Join(Families(), ", "))
	}
	return mk(b, loaderTree)
}
