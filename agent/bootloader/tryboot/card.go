package tryboot

import (
	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/contract"
)

// Card is a fresh SD card's FAT file systems, as the builder lays them
// down and copies them (MemFS.Walk) into the partitions.
type Card struct {
	// Auto is CAIRN-AUTO: autoboot.txt, committing slot a.
	Auto *bootloader.MemFS
	// Boot are the slots' boot partitions: a installed, b empty.
	Boot map[contract.Slot]*bootloader.MemFS
}

// NewCard installs files into slot a and commits it, on empty file systems.
func NewCard(files bootloader.BootFiles) (*Card, error) {
	c := &Card{Auto: &bootloader.MemFS{}, Boot: map[contract.Slot]*bootloader.MemFS{}}
	boot := map[contract.Slot]bootloader.FS{}
	for _, s := range contract.Slots {
		c.Boot[s] = &bootloader.MemFS{}
		boot[s] = c.Boot[s]
	}
	l, err := New(c.Auto, boot, nil, nil)
	if err != nil {
		return nil, err
	}
	if err := l.Install(contract.SlotA, files); err != nil {
		return nil, err
	}
	if err := l.Commit(contract.SlotA); err != nil {
		return nil, err
	}
	return c, nil
}
