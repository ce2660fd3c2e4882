package disk

import (
	"testing"

	"github.com/diskfs/go-diskfs/partition/gpt"
)

func TestPlan(t *testing.T) {
	l, err := Plan("arm64", "minimal-qemu-aarch64", Sizes{ESP: 128 << 20, Slot: 256 << 20, Data: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		label       string
		typ         gpt.Type
		start, size int64
	}{
		{LabelESP, TypeESP, 1 << 20, 128 << 20},
		{LabelA, gpt.LinuxRootArm64, 129 << 20, 256 << 20},
		{LabelB, gpt.LinuxRootArm64, 385 << 20, 256 << 20},
		{LabelData, TypeVar, 641 << 20, 64 << 20},
	}
	if len(l.Partitions) != len(want) {
		t.Fatalf("got %d partitions, want %d", len(l.Partitions), len(want))
	}
	seen := map[string]bool{l.GUID: true}
	for i, w := range want {
		p := l.Partitions[i]
		if p.Index != i+1 || p.Label != w.label || p.Type != w.typ || p.Start != w.start || p.Size != w.size {
			t.Errorf("partition %d = %+v, want %+v", i+1, p, w)
		}
		if seen[p.GUID] {
			t.Errorf("partition %d reuses GUID %s", i+1, p.GUID)
		}
		seen[p.GUID] = true
	}
	if got, want := l.Size, int64(706<<20); got != want {
		t.Errorf("Size = %d MiB, want %d MiB (the last MiB holds the backup GPT)", got>>20, want>>20)
	}
	again, _ := Plan("arm64", "minimal-qemu-aarch64", Sizes{ESP: 128 << 20, Slot: 256 << 20, Data: 64 << 20})
	other, _ := Plan("arm64", "other-qemu-aarch64", Sizes{ESP: 128 << 20, Slot: 256 << 20, Data: 64 << 20})
	if again.GUID != l.GUID || again.Partitions[1].GUID != l.Partitions[1].GUID {
		t.Error("the same seed gave different GUIDs")
	}
	if other.GUID == l.GUID {
		t.Error("different seeds gave the same disk GUID")
	}
}

func TestPlanErrors(t *testing.T) {
	if _, err := Plan("riscv64", "x", Sizes{ESP: 1 << 20, Slot: 1 << 20, Data: 1 << 20}); err == nil {
		t.Error("Plan accepted an unknown arch")
	}
	if _, err := Plan("amd64", "x", Sizes{ESP: 1 << 20, Slot: 1000, Data: 1 << 20}); err == nil {
		t.Error("Plan accepted a size that is not a multiple of 1 MiB")
	}
}

// TestPlanExtlinux: the UEFI layout, the ESP alone legacy BIOS bootable
// (U-Boot's "part list -bootable"), bit 2 in the written table.
func TestPlanExtlinux(t *testing.T) {
	sizes := Sizes{ESP: 128 << 20, Slot: 256 << 20, Data: 64 << 20}
	l, err := PlanExtlinux("arm64", "minimal-jetson-nano", sizes)
	if err != nil {
		t.Fatal(err)
	}
	uefi, _ := Plan("arm64", "minimal-jetson-nano", sizes)
	for i, p := range l.Partitions {
		u := uefi.Partitions[i]
		u.LegacyBootable = i == 0
		if p != u {
			t.Errorf("partition %d = %+v, want the UEFI layout's %+v", i+1, p, u)
		}
	}
	for i, p := range l.table().Partitions {
		if want := map[bool]uint64{true: 4, false: 0}[i == 0]; p.Attributes != want {
			t.Errorf("partition %d attributes %#x, want %#x", i+1, p.Attributes, want)
		}
	}
}
