package output

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/builder/bmap"
	"github.com/cairn-edge/cairn/builder/disk"
	"github.com/cairn-edge/cairn/builder/plan"
)

// Raw writes the whole disk image (.img: partition table, boot partition,
// slot A, an empty slot B and CAIRN-DATA; unwritten space stays a hole) and
// its block map (.bmap) for bmaptool and cairn flash.
type Raw struct{}

// Write implements Writer.
func (Raw) Write(ctx context.Context, p *plan.Plan, dir string) (*Files, error) {
	log := slog.With("image", p.Name)
	log.Info("step", "step", "writing slot and initramfs")
	r, err := render(p, dir)
	if err != nil {
		return nil, err
	}
	log.Info("step", "step", "writing disk image")
	fats, err := p.Firmware.BootPartitions(p.Boot, r.initrd)
	if err != nil {
		return nil, err
	}
	img := filepath.Join(dir, "disk.img")
	f, err := os.Create(img)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c := disk.Contents{FAT: fats, Slots: map[contract.Slot]string{contract.SlotA: r.slot}, Epoch: p.Epoch}
	if err := disk.Write(f, p.Layout, c); err != nil {
		return nil, fmt.Errorf("%s: %w", p.Name, err)
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	log.Info("step", "step", "writing block map")
	m, err := bmap.Scan(f)
	if err != nil {
		return nil, err
	}
	// The zeros disk.Write wrote must be in the map, or a reused card
	// keeps its old file systems there.
	for _, e := range p.Layout.Wiped() {
		if !m.Covers(e.Off, e.Len) {
			return nil, fmt.Errorf("%s: the block map leaves out the zeros written at bytes %d-%d of the image, so a reused card would keep its old data there: the file system under %s turns written zeros into holes (as ZFS with compression does); build into a directory on another one (-o)", p.Name, e.Off, e.Off+e.Len-1, dir)
		}
	}
	bm := filepath.Join(dir, "disk.bmap")
	if err := os.WriteFile(bm, m.Encode(), 0o644); err != nil {
		return nil, err
	}
	return &Files{
		Files:         []File{{Path: img, Ext: ".img"}, {Path: bm, Ext: ".bmap"}},
		Size:          p.Layout.Size,
		Mapped:        m.Mapped() * bmap.BlockSize,
		SlotSize:      r.slotSize,
		InitramfsSize: int64(len(r.initrd)),
	}, nil
}
