package firmware

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/builder/bootentry"
	"github.com/cairn-edge/cairn/builder/disk"
	"github.com/cairn-edge/cairn/builder/fstree"
	"github.com/cairn-edge/cairn/builder/spec"
)

// uefi is the family of boards whose UEFI firmware boots a GPT disk's ESP:
// systemd-boot as the removable-media loader, Boot Loader Specification
// entries with boot counting for the A/B slots.
type uefi struct {
	arch string
	// efi is the host path of systemd-boot's EFI binary.
	efi string
}

func newUEFI(b *spec.Board, loaderTree string) (Part, error) {
	if _, ok := contract.EFIBootPaths[b.Arch]; !ok {
		return nil, fmt.Errorf("%s: UEFI boot is not defined for arch %q (use amd64 or arm64)", b.File(), b.Arch)
	}
	efi := filepath.Join(loaderTree, filepath.FromSlash(b.Bootloader.Path))
	if _, err := os.Stat(efi); err != nil {
		return nil, fmt.Errorf("boot loader image %s has no %s: fix bootloader.path in %s", b.Bootloader.Image, b.Bootloader.Path, b.File())
	}
	return &uefi{arch: b.Arch, efi: efi}, nil
}

func (u *uefi) Family() string { return "uefi" }

// Layout is the A/B GPT disk: ESP, CAIRN-A, CAIRN-B, CAIRN-DATA.
func (u *uefi) Layout(seed string, s disk.Sizes) (disk.Layout, error) {
	return disk.Plan(u.arch, seed, s)
}

// BootPartition is the ESP of a fresh image: systemd-boot and slot A's
// kernel, initramfs and boot entry. Slot B gets its files and entry when
// an update is written to it.
func (u *uefi) BootPartition(b Boot, initrd []byte) (*fstree.Tree, error) {
	t := fstree.New()
	if err := t.HostFile(contract.EFIBootPaths[u.arch], 0o644, u.efi); err != nil {
		return nil, err
	}
	if err := t.File(contract.ESPLoaderConf, 0o644, bootentry.LoaderConf()); err != nil {
		return nil, err
	}
	slot := contract.SlotA
	e := bootentry.Entry{
		Slot:    string(slot),
		Title:   fmt.Sprintf("%s (slot %s)", b.Title, strings.ToUpper(string(slot))),
		Version: b.Version,
		Linux:   "/" + path.Join(slot.BootDir(), contract.KernelFile),
		Initrd:  "/" + path.Join(slot.BootDir(), contract.InitrdFile),
		Options: strings.Join(append(append([]string{}, b.Cmdline...), contract.SlotOption(slot)), " "),
	}
	if err := t.File(path.Join(contract.ESPEntriesDir, e.FileName()), 0o644, e.Render()); err != nil {
		return nil, err
	}
	if err := t.HostFile(path.Join(slot.BootDir(), contract.KernelFile), 0o644, b.Kernel); err != nil {
		return nil, err
	}
	return t, t.File(path.Join(slot.BootDir(), contract.InitrdFile), 0o644, initrd)
}
