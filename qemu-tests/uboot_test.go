package qemutests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/bootloader/extlinux"
	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/qemu-tests/picard"
	"github.com/cairn-edge/cairn/qemu-tests/qemu"
)

// TestUBootExtlinux is the life of a Jetson Nano upgraded over the air
// (firmware extlinux) through real U-Boot: Debian's u-boot-qemu on QEMU's
// arm64 virt machine (testdata/qemu-aarch64-uboot.yaml, the Nano's
// mechanism on hardware QEMU has). U-Boot reads extlinux.conf from the ESP
// and boots its DEFAULT, slot a, to the agent. v2 comes from the registry:
// the agent makes slot b U-Boot's DEFAULT for one boot, b's cairn-init sets
// the DEFAULT back to a before it mounts its slot, and b's agent commits
// by making b the DEFAULT; a reboot boots b. v3's agent never comes up:
// its cairn-init sets the DEFAULT back to b, the watchdog resets the
// board, U-Boot boots b, whose agent reports the rollback. The ESP then
// says b. One guest for the story.
func TestUBootExtlinux(t *testing.T) {
	if _, err := os.Stat(qemu.UBootARM64); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no U-Boot for QEMU (%v): make test installs Debian's u-boot-qemu (builder/scripts/deps.sh)", err)
		}
		t.Skipf("no U-Boot for QEMU (%v): apt-get install u-boot-qemu", err)
	}
	share(t, 1)
	r := newUpgradeRig(t)
	board := filepath.Join(env.Root, "qemu-tests", "testdata", "qemu-aarch64-uboot.yaml")
	img, err := env.Build(r.spec("1.0.0", "", ""), board, filepath.Join(r.dir, "out-1.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	r.disk, r.config = qemu.CopyImage(t, img.Image), img.NodeConfig
	if err := os.Truncate(r.disk, 2<<30); err != nil {
		t.Fatal(err)
	}
	r.vm = qemu.StartT(t, qemu.WithArch(qemu.ARM64), qemu.WithDisk(r.disk), qemu.WithBIOS(qemu.UBootARM64), qemu.WithMemory(1024),
		qemu.WithGuestReboot(), qemu.WithWatchdog(), qemu.WithPortForward(0, api.DefaultPort))
	expect := func(lines ...string) {
		t.Helper()
		for _, line := range lines {
			if _, err := r.vm.Expect(2*bootTimeout, line); err != nil {
				t.Fatal(err)
			}
		}
	}
	expect(`U-Boot 20\d\d`, `extlinux/extlinux\.conf`, `cairn: init ok slot=a `, `cairn: agent ready`)

	r.step("v2 committed, U-Boot's DEFAULT", func(t *testing.T) {
		r.push(r.spec("2.0.0", "", ""), board, "2.0.0")
		if out, err := r.upgrade("2.0.0"); err != nil {
			t.Fatalf("upgrade to 2.0.0: %v\n%s", err, out)
		}
		expect(`cairn: extlinux trial slot=b: U-Boot's default is back on slot=a`, `cairn: upgrade committed slot=b version=2\.0\.0`)
		r.expectRunning("2.0.0", "b")
		if out, err := r.node("reboot"); err != nil {
			t.Fatalf("cairn node reboot: %v\n%s", err, out)
		}
		expect(`U-Boot 20\d\d`, `cairn: init ok slot=b version=2\.0\.0`, `cairn: agent ready`)
	})

	r.step("v3 that never reaches its agent: the watchdog, and U-Boot boots b", func(t *testing.T) {
		r.push(r.noAgentSpec("3.0.0", "arm64"), board, "3.0.0")
		out, err := r.upgrade("3.0.0")
		if err == nil || !strings.Contains(out, "rolled back to slot b") {
			t.Fatalf("upgrade to a release without an agent: %v\n%s", err, out)
		}
		expect(`cairn: extlinux trial slot=a: U-Boot's default is back on slot=b`)
		r.expectRunning("2.0.0", "b")
	})

	// Off, the ESP read from the host: DEFAULT is b.
	if err := r.vm.Kill(); err != nil {
		t.Fatal(err)
	}
	withESP(t, r.disk, func(esp extlinux.FS) {
		if def, err := extlinux.New(esp, nil).Default(); err != nil || def != contract.SlotB {
			t.Errorf("U-Boot's DEFAULT after the story: %v, %v; want slot b", def, err)
		}
	})
}

// withESP runs fn on a copy of disk's ESP in a directory, then copies
// it back (mtools: this host may have no vfat to mount). What fn removes
// stays on the disk; the loader's operations here only add and overwrite.
func withESP(t *testing.T, disk string, fn func(esp extlinux.FS)) {
	t.Helper()
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	table, err := gpt.Read(f, 512, 512)
	f.Close()
	if err != nil {
		t.Fatalf("%s: %v", disk, err)
	}
	var start int64 = -1
	for _, p := range table.Partitions {
		if p.Name == contract.LabelESP {
			start = p.GetStart()
		}
	}
	if start < 0 {
		t.Fatalf("%s has no ESP", disk)
	}
	image := fmt.Sprintf("%s@@%d", disk, start)
	dir := t.TempDir()
	if err := picard.ReadFAT(image, dir); err != nil {
		t.Fatal(err)
	}
	fn(bootloader.DirFS(dir))
	if err := picard.WriteFAT(image, dir); err != nil {
		t.Fatal(err)
	}
}
