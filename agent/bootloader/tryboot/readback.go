package tryboot

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/contract"
)

var _ bootloader.Readback = (*Loader)(nil)

// OpenKernel implements bootloader.Readback: the kernel on slot's boot
// partition.
func (l *Loader) OpenKernel(slot contract.Slot) (io.ReadCloser, error) {
	return l.open(slot, contract.RPiKernelFile)
}

// OpenInitrd implements bootloader.Readback: the initramfs on slot's boot
// partition.
func (l *Loader) OpenInitrd(slot contract.Slot) (io.ReadCloser, error) {
	return l.open(slot, contract.RPiInitrdFile)
}

// OpenFile implements bootloader.Readback: board file name on slot's boot
// partition as Install was given it. config.txt is the board's part of
// the one Install composed; a config.txt Install did not write (edited by
// hand) is an error, not the board's.
func (l *Loader) OpenFile(slot contract.Slot, name string) (io.ReadCloser, error) {
	lower := strings.ToLower(name)
	if !fs.ValidPath(name) || name == "." || reserved[lower] {
		return nil, fmt.Errorf("reading back slot %s's board file %q: not a board file's name", slot, name)
	}
	if lower != contract.RPiConfigFile {
		return l.open(slot, name)
	}
	fsys, err := l.slotFS(slot)
	if err != nil {
		return nil, err
	}
	composed, err := fsys.ReadFile(contract.RPiConfigFile)
	if err != nil {
		return nil, err
	}
	board, ok := boardConfig(slot, composed)
	if !ok {
		return nil, fmt.Errorf("%s's %s does not end in the lines Install writes for slot %s: changed by hand, so the board's part of it is unknown", slot.RPiBootLabel(), contract.RPiConfigFile, slot)
	}
	return io.NopCloser(bytes.NewReader(board)), nil
}

func (l *Loader) slotFS(slot contract.Slot) (bootloader.FS, error) {
	fsys, ok := l.boot[slot]
	if !ok {
		return nil, fmt.Errorf("%q is not a slot (want a or b)", slot)
	}
	return fsys, nil
}

// open streams name off slot's boot partition when its FS can, else
// reads it whole.
func (l *Loader) open(slot contract.Slot, name string) (io.ReadCloser, error) {
	fsys, err := l.slotFS(slot)
	if err != nil {
		return nil, err
	}
	if o, ok := fsys.(bootloader.Opener); ok {
		return o.Open(name)
	}
	b, err := fsys.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}
