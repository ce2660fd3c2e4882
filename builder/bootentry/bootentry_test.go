package bootentry

import (
	"testing"

	"github.com/cairn-edge/cairn/agent/bootloader/sdboot"
)

// The builder's entry must read back on the node as slot a's committed entry.
func TestReadsBackOnTheNode(t *testing.T) {
	e := Entry{Slot: "a", Title: "Cairn", Version: "1.0.0", Linux: "/cairn/a/vmlinuz", Initrd: "/cairn/a/initrd", Options: "cairn.slot=a"}
	got, err := sdboot.Parse(e.FileName(), e.Render())
	if err != nil || got.Slot != "a" || got.Counting || got.Linux != e.Linux || got.Options != e.Options {
		t.Errorf("sdboot.Parse(%q) = %+v, %v", e.FileName(), got, err)
	}
}
