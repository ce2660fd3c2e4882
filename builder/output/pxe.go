package output

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/builder/fstree"
	"github.com/cairn-edge/cairn/builder/initramfs"
	"github.com/cairn-edge/cairn/builder/netboot"
	"github.com/cairn-edge/cairn/builder/plan"
)

// PXE writes a network boot bundle (.pxe, a directory; builder/netboot):
// a folder for the image's architecture with the kernel, Cairn's
// initramfs, a second initrd holding only the slot's squashfs (the node
// runs it from RAM: contract.MediaRAM) and the manifest cairn serve
// reads. Serve several bundles, one per architecture, side by side.
type PXE struct{}

// Write implements Writer.
func (PXE) Write(ctx context.Context, p *plan.Plan, dir string) (*Files, error) {
	log := slog.With("image", p.Name)
	if !slices.Contains(p.Image.BootModules, contract.LoopModule) {
		return nil, fmt.Errorf("%s: board %q: a network-booted node mounts its slot through a loop device, but the board's bootModules lack %s (add it to the board file's kernel.bootModules)", p.Name, p.Image.Board.Name, contract.LoopModule)
	}
	log.Info("step", "step", "writing slot and initramfs")
	r, err := render(p, dir)
	if err != nil {
		return nil, err
	}
	log.Info("step", "step", "writing network boot bundle")
	arch := p.Image.Board.Arch
	bundle := filepath.Join(dir, "bundle")
	folder := filepath.Join(bundle, arch)
	if err := os.MkdirAll(folder, 0o755); err != nil {
		return nil, err
	}
	kernel, err := os.ReadFile(p.Boot.Kernel)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(folder, contract.NetbootKernel), kernel, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(folder, contract.NetbootInitrd), r.initrd, 0o644); err != nil {
		return nil, err
	}
	slot := fstree.New()
	if err := slot.HostFile(contract.RAMSlotFile, 0o644, r.slot); err != nil {
		return nil, err
	}
	f, err := os.Create(filepath.Join(folder, contract.NetbootSlotInitrd))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Not compressed: the squashfs is already, and the kernel unpacks
	// a plain archive fastest.
	if err := initramfs.WriteCPIO(slot, f); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	m := &netboot.Manifest{
		Name:    p.Image.Spec.Name,
		Version: p.Image.Spec.Version,
		Arch:    arch,
		Cmdline: strings.Join(append(append([]string{}, p.Boot.Cmdline...), contract.SlotOption(contract.SlotA), contract.MediaOption), " "),
	}
	if err := m.Pack(folder, contract.NetbootKernel, contract.NetbootInitrd, contract.NetbootSlotInitrd); err != nil {
		return nil, err
	}
	var size int64
	for _, file := range m.Files() {
		size += file.Size
	}
	return &Files{
		Files:         []File{{Path: bundle, Ext: ".pxe"}},
		Size:          size,
		Mapped:        size,
		SlotSize:      r.slotSize,
		InitramfsSize: int64(len(r.initrd)),
	}, nil
}
