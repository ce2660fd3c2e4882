package main

import (
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/bootloader/extlinux"
	"github.com/cairn-edge/cairn/agent/contract"
)

// TestRevertOn: on a trial boot the ESP's DEFAULT goes back on the
// committed slot and the console says so; on other boots nothing is said.
// (Finding and mounting the ESP needs a real boot: not tested here.)
func TestRevertOn(t *testing.T) {
	said, _ := fakeWatchdog(t, "/nonexistent")
	dir := t.TempDir()
	esp := bootloader.DirFS(dir)
	files := func(v string) bootloader.BootFiles {
		return bootloader.BootFiles{Kernel: strings.NewReader("k"), Initrd: strings.NewReader("i"), Version: v}
	}
	l := extlinux.New(esp, nil)
	if err := l.Install(contract.SlotA, files("1")); err != nil {
		t.Fatal(err)
	}
	if err := l.Commit(contract.SlotA); err != nil {
		t.Fatal(err)
	}
	revertOn(esp, contract.SlotA)
	if len(*said) != 0 {
		t.Errorf("a boot of the committed slot said %q", *said)
	}
	if err := l.Install(contract.SlotB, files("2")); err != nil {
		t.Fatal(err)
	}
	if _, err := l.ArmTrial(contract.SlotB); err != nil {
		t.Fatal(err)
	}
	revertOn(esp, contract.SlotB)
	if d, _ := l.Default(); d != contract.SlotA {
		t.Errorf("after the revert U-Boot's default is %s, want a", d)
	}
	if len(*said) != 1 || !strings.HasPrefix((*said)[0], "extlinux trial slot=b: U-Boot's default is back on slot=a") {
		t.Errorf("said %q", *said)
	}
	revertOn(bootloader.DirFS(t.TempDir()), contract.SlotB)
	if len(*said) != 2 || !strings.HasPrefix((*said)[1], "warning: extlinux:") {
		t.Errorf("an ESP without a menu: said %q", *said)
	}
}

// TestRevertExtlinuxTrialOtherBoards: without the flag on the command
// line, nothing is looked for.
func TestRevertExtlinuxTrialOtherBoards(t *testing.T) {
	said, _ := fakeWatchdog(t, "/nonexistent")
	revertExtlinuxTrial(parse(t, "console=ttyS0 cairn.slot=a"), contract.SlotA)
	if len(*said) != 0 {
		t.Errorf("said %q", *said)
	}
}
