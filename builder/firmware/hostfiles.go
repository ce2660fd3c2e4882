package firmware

import (
	"bytes"
	"cmp"
	"fmt"
	"os"
	"strings"

	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/contract"
)

// hostFiles are slot a's boot files of a fresh image, opened on the host
// for the boot loader's Install to read; Close closes them.
type hostFiles struct {
	bootloader.BootFiles
	open []*os.File
}

// openBoot opens b's kernel and makes slot a's BootFiles with initrd and
// the board's files (none when board is nil); title is the menu title
// (b.Title when empty).
func openBoot(b Boot, initrd []byte, title string, board BoardFiler) (*hostFiles, error) {
	h := &hostFiles{BootFiles: bootloader.BootFiles{
		Initrd:  bytes.NewReader(initrd),
		Cmdline: b.Cmdline,
		Title:   cmp.Or(title, b.Title),
		Version: b.Version,
	}}
	if board != nil {
		files, err := board.BoardFiles()
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			h.Files = append(h.Files, bootloader.File{Name: f.Name, Data: bytes.NewReader(f.Data)})
		}
	}
	k, err := h.openHost(b.Kernel)
	if err != nil {
		return nil, err
	}
	h.Kernel = k
	return h, nil
}

// slotTitle is the menu title of b's slot a, as "Cairn minimal 1.0.0 (slot A)".
func slotTitle(b Boot) string {
	return fmt.Sprintf("%s (slot %s)", b.Title, strings.ToUpper(string(contract.SlotA)))
}

func (h *hostFiles) openHost(p string) (*os.File, error) {
	f, err := os.Open(p)
	if err != nil {
		h.Close()
		return nil, err
	}
	h.open = append(h.open, f)
	return f, nil
}

// Close closes the files opened.
func (h *hostFiles) Close() {
	for _, f := range h.open {
		f.Close()
	}
	h.open = nil
}
