package firmware

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/bootloader/sdboot"
	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/builder/disk"
	"github.com/cairn-edge/cairn/builder/fstree"
	"github.com/cairn-edge/cairn/builder/spec"
)

// uefi is the family of boards whose UEFI firmware boots a GPT disk's ESP:
// systemd-boot as the removable-media loader, Boot Loader Specification
// entries with boot counting for the A/B slots.
type uefi struct {
	arch string
	// efi is the host path of systemd-boot's EFI binary, its links
	// followed inside the boot loader image.
	efi string
}

func newUEFI(img *spec.Image, in Inputs) (Part, error) {
	b, loaderTree := img.Board, in.Loader
	if loaderTree == nil {
		return nil, fmt.Errorf("%s: a uefi board needs bootloader.image (systemd-boot)", b.File())
	}
	if _, ok := contract.EFIBootPaths[b.Arch]; !ok {
		return nil, fmt.Errorf("%s: UEFI boot is not defined for arch %q (use amd64 or arm64)", b.File(), b.Arch)
	}
	efi, err := loaderTree.HostPath(b.Bootloader.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("boot loader image %s has no %s: fix bootloader.path in %s", b.Bootloader.Image, b.Bootloader.Path, b.File())
	}
	if err != nil {
		return nil, fmt.Errorf("boot loader image %s: %w (fix bootloader.path in %s or the image)", b.Bootloader.Image, err, b.File())
	}
	return &uefi{arch: b.Arch, efi: efi}, nil
}

func (u *uefi) Family() string { return "uefi" }

// Layout is the A/B GPT disk: ESP, CAIRN-A, CAIRN-B, CAIRN-DATA.
func (u *uefi) Layout(seed string, s disk.Sizes) (disk.Layout, error) {
	return disk.Plan(u.arch, seed, s)
}

// BootPartitions is the ESP of a fresh image: systemd-boot, and slot A's
// kernel, initramfs and boot entry written by agent/bootloader/sdboot —
// the code the node upgrades with — installed and committed. Slot B gets
// its files and entry when an update is written to it.
func (u *uefi) BootPartitions(b Boot, initrd []byte) (map[string]*fstree.Tree, error) {
	files, err := openBoot(b, initrd, slotTitle(b), nil)
	if err != nil {
		return nil, err
	}
	defer files.Close()
	var esp bootloader.MemFS
	bl := sdboot.New(&esp, nil)
	slot := contract.SlotA
	if err := bl.Install(slot, files.BootFiles); err != nil {
		return nil, fmt.Errorf("ESP: %w", err)
	}
	if err := bl.Commit(slot); err != nil {
		return nil, fmt.Errorf("ESP: %w", err)
	}
	t := fstree.New()
	if err := t.HostFile(contract.EFIBootPaths[u.arch], 0o644, u.efi); err != nil {
		return nil, err
	}
	if err := esp.Walk(func(name string, data []byte) error { return t.File(name, 0o644, data) }); err != nil {
		return nil, err
	}
	return map[string]*fstree.Tree{disk.LabelESP: t}, nil
}
