package tryboot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"

	"github.com/cairn-edge/cairn/agent/contract"
)

// BootRecord is what the firmware says, in the device tree, about this
// boot.
type BootRecord struct {
	// Tryboot is set if the tryboot flag was set for this boot.
	Tryboot bool
	// Partition is the MBR partition number booted from.
	Partition uint32
}

// ReadBootRecord reads the record from dt, the device tree
// (contract.RPiDeviceTree).
func ReadBootRecord(dt fs.FS) (BootRecord, error) {
	if dt == nil {
		return BootRecord{}, errors.New("no device tree to read this boot's record from (a Loader made for the builder cannot tell a trial)")
	}
	var cells [2]uint32
	for i, name := range []string{contract.RPiDTTryboot, contract.RPiDTPartition} {
		b, err := fs.ReadFile(dt, name)
		if errors.Is(err, fs.ErrNotExist) {
			return BootRecord{}, fmt.Errorf("%s/%s is missing: not a Raspberry Pi, or its firmware is too old for tryboot_a_b (update the bootloader EEPROM)", contract.RPiDeviceTree, name)
		}
		if err != nil {
			return BootRecord{}, fmt.Errorf("reading %s/%s: %w", contract.RPiDeviceTree, name, err)
		}
		if cells[i], err = ParseCell(b); err != nil {
			return BootRecord{}, fmt.Errorf("%s/%s: %w", contract.RPiDeviceTree, name, err)
		}
	}
	if cells[0] > 1 {
		return BootRecord{}, fmt.Errorf("%s/%s is %d, want 0 or 1", contract.RPiDeviceTree, contract.RPiDTTryboot, cells[0])
	}
	return BootRecord{Tryboot: cells[0] == 1, Partition: cells[1]}, nil
}

// ParseCell reads a device-tree property holding one cell: exactly four
// bytes, a big-endian uint32.
func ParseCell(b []byte) (uint32, error) {
	if len(b) != 4 {
		return 0, fmt.Errorf("%d bytes, want 4 (one big-endian uint32 cell from the firmware)", len(b))
	}
	return binary.BigEndian.Uint32(b), nil
}
