package extlinux

import (
	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/contract"
)

// NewESP installs files into slot a and commits it on an empty MemFS: a
// fresh image's ESP, which the builder copies (MemFS.Walk) into the
// partition.
func NewESP(files bootloader.BootFiles) (*bootloader.MemFS, error) {
	esp := &bootloader.MemFS{}
	l := New(esp, nil)
	if err := l.Install(contract.SlotA, files); err != nil {
		return nil, err
	}
	if err := l.Commit(contract.SlotA); err != nil {
		return nil, err
	}
	return esp, nil
}
