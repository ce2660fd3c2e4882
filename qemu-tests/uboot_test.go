package qemutests

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"testing"

	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/bootloader/extlinux"
	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/qemu-tests/picard"
	"github.com/cairn-edge/cairn/qemu-tests/qemu"
)

// TestUBootExtlinux runs the Jetson Nano's boot path (firmware extlinux)
// through real U-Boot: Debian's u-boot-qemu on QEMU's arm64 virt machine
// (testdata/qemu-aarch64-uboot.yaml, the Nano's mechanism on hardware QEMU
// has). U-Boot reads extlinux.conf from the ESP and boots its DEFAULT,
// slot a, to the agent. Then, with the node off, a trial of slot b is armed
// on its ESP as the agent arms one (extlinux's Install and ArmTrial), b's
// root partition left empty, a slot that never reaches its agent: U-Boot
// boots b, whose cairn-init sets the DEFAULT back to a before it finds no
// root and reboots, and the next boot is slot a's. The ESP then says a.
func TestUBootExtlinux(t *testing.T) {
	if _, err := os.Stat(qemu.UBootARM64); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no U-Boot for QEMU (%v): make test installs Debian's u-boot-qemu (builder/scripts/deps.sh)", err)
		}
		t.Skipf("no U-Boot for QEMU (%v): apt-get install u-boot-qemu", err)
	}
	share(t, 1)
	img, err := env.Minimal(filepath.Join(env.Root, "qemu-tests", "testdata", "qemu-aarch64-uboot.yaml"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	disk := qemu.CopyImage(t, img.Image)
	os.Truncate(disk, 2<<30)
	opts := []qemu.Option{qemu.WithArch(qemu.ARM64), qemu.WithDisk(disk), qemu.WithBIOS(qemu.UBootARM64), qemu.WithMemory(1024)}

	// U-Boot boots the DEFAULT, slot a, to its agent.
	vm := qemu.StartT(t, opts...)
	for _, line := range []string{`U-Boot 20\d\d`, `extlinux/extlinux\.conf`, `cairn: init ok slot=a `, `cairn: agent ready`} {
		if _, err := vm.Expect(bootTimeout, line); err != nil {
			t.Fatal(err)
		}
	}
	// Off by a power cut: QEMU's power button reaches a guest booted
	// with a device tree through gpio-keys, which this board leaves out.
	if err := vm.Kill(); err != nil {
		t.Fatal(err)
	}

	// A trial of slot b, armed as the agent arms one, b's root empty.
	withESP(t, disk, func(esp extlinux.FS) {
		l := extlinux.New(esp, nil)
		kernel, err := esp.ReadFile(path.Join(contract.SlotA.BootDir(), contract.KernelFile))
		if err != nil {
			t.Fatalf("slot a's kernel on the ESP: %v", err)
		}
		initrd, _ := esp.ReadFile(path.Join(contract.SlotA.BootDir(), contract.InitrdFile))
		files := bootloader.BootFiles{Kernel: bytes.NewReader(kernel), Initrd: bytes.NewReader(initrd),
			Cmdline: []string{"console=ttyAMA0"}, Title: "trial", Version: "0.2.0"}
		if err := l.Install(contract.SlotB, files); err != nil {
			t.Fatal(err)
		}
		if _, err := l.ArmTrial(contract.SlotB); err != nil {
			t.Fatal(err)
		}
	})

	// U-Boot boots b; its cairn-init reverts, finds no root, reboots; a.
	vm = qemu.StartT(t, append(opts, qemu.WithGuestReboot())...)
	for _, line := range []string{
		`cairn: extlinux trial slot=b: U-Boot's default is back on slot=a`,
		`cairn: fatal: `,
		`U-Boot 20\d\d`,
		`cairn: init ok slot=a `,
		`cairn: agent ready`,
	} {
		if _, err := vm.Expect(2*bootTimeout, line); err != nil {
			t.Fatal(err)
		}
	}
	if err := vm.Kill(); err != nil {
		t.Fatal(err)
	}
	withESP(t, disk, func(esp extlinux.FS) {
		if def, err := extlinux.New(esp, nil).Default(); err != nil || def != contract.SlotA {
			t.Errorf("U-Boot's DEFAULT after the failed trial: %v, %v; want slot a", def, err)
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
