package firmware

import (
	"fmt"
	"os"
	"path"

	"github.com/cairn-edge/cairn/agent/bootloader/extlinux"
	"github.com/cairn-edge/cairn/builder/disk"
	"github.com/cairn-edge/cairn/builder/fstree"
	"github.com/cairn-edge/cairn/builder/spec"
)

// extlinuxFamily is the family of boards whose U-Boot reads
// extlinux/extlinux.conf from the ESP (agent/bootloader/extlinux): A/B by
// agent-side rollback, as U-Boot there counts no boots.
type extlinuxFamily struct {
	arch string
	// fdt is the host path of the board's device tree, "" for none;
	// fdtName its name in a slot's directory.
	fdt, fdtName string
}

func newExtlinux(img *spec.Image, in Inputs) (Part, error) {
	e := img.Extlinux
	if e == nil {
		return nil, fmt.Errorf("%s: firmware extlinux without its merged section (a bug)", img.Board.File())
	}
	p := &extlinuxFamily{arch: img.Board.Arch}
	if e.FDT != "" {
		host, err := in.Kernel.HostPath(path.Join(dtbDir, e.FDT))
		if err != nil {
			return nil, fmt.Errorf("%s: the kernel image %s has no /%s/%s: %v (use a kernel image with the board's device tree, or fix extlinux.fdt)", e.From, in.KernelRef, dtbDir, e.FDT, notExist(err))
		}
		p.fdt, p.fdtName = host, path.Base(e.FDT)
	}
	return p, nil
}

func (p *extlinuxFamily) Family() string { return "extlinux" }

// Layout is disk.PlanExtlinux: the UEFI layout, the ESP legacy BIOS
// bootable for U-Boot's distro boot.
func (p *extlinuxFamily) Layout(seed string, s disk.Sizes) (disk.Layout, error) {
	return disk.PlanExtlinux(p.arch, seed, s)
}

// BootPartitions is a fresh image's ESP as extlinux.NewESP lays it down:
// extlinux/extlinux.conf with slot a's label the DEFAULT, the trial flag,
// slot a's kernel, initramfs, device tree and stamp.
func (p *extlinuxFamily) BootPartitions(b Boot, initrd []byte) (map[string]*fstree.Tree, error) {
	files, err := openBoot(b, initrd, slotTitle(b), p)
	if err != nil {
		return nil, err
	}
	defer files.Close()
	esp, err := extlinux.NewESP(files.BootFiles)
	if err != nil {
		return nil, fmt.Errorf("ESP: %w", err)
	}
	t := fstree.New()
	if err := copyMem(t, esp); err != nil {
		return nil, err
	}
	return map[string]*fstree.Tree{disk.LabelESP: t}, nil
}

var _ BoardFiler = (*extlinuxFamily)(nil)

// BoardFiles implements BoardFiler: the board's device tree, which a
// slot's label loads (FDT), as BootPartitions writes it and the update
// artifact carries it; none when the board names none.
func (p *extlinuxFamily) BoardFiles() ([]BoardFile, error) {
	if p.fdt == "" {
		return nil, nil
	}
	b, err := os.ReadFile(p.fdt)
	if err != nil {
		return nil, fmt.Errorf("board file %s: %w", p.fdtName, err)
	}
	return []BoardFile{{Name: p.fdtName, Data: b}}, nil
}
