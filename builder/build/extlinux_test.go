package build

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/agent/update/artifact"
	"github.com/cairn-edge/cairn/builder/disk"
	"github.com/cairn-edge/cairn/builder/push"
)

// nanoBoard is a U-Boot extlinux board on the fixture's fake inputs.
const nanoBoard = `name: test-nano
arch: arm64
firmware: extlinux
kernel:
  image: oci-layout:../oci:%s
  cmdline: ["console=ttyS0,115200n8"]
  bootModules: [squashfs, ext4, vfat]
  modules: [evdev]
extlinux:
  fdt: nvidia/tegra210-p3450-0000.dtb
`

const nanoDTB = "\xd0\x0d\xfe\xednano"

// nanoFixture adds to the fixture an arm64 kernel with the Nano's device
// tree (vfat built in), our arm64 binaries and the board.
func nanoFixture(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t)
	k := kernelFiles()
	k["boot/dtbs/nvidia/tegra210-p3450-0000.dtb"] = nanoDTB
	k["lib/modules/6.1.0-test/modules.builtin"] += "kernel/fs/fat/vfat.ko\n"
	pack(t, f.layout, "linux-nano", "arm64", k)
	delete(k, "boot/dtbs/nvidia/tegra210-p3450-0000.dtb")
	pack(t, f.layout, "linux-nano-nodtb", "arm64", k)
	writeFiles(t, f.dir, map[string]string{
		"bin/linux-arm64/cairn-init":  "#!fake init",
		"bin/linux-arm64/cairn-agent": "#!fake agent",
	})
	writeFiles(t, f.boards, map[string]string{"test-nano.yaml": fmt.Sprintf(nanoBoard, "linux-nano")})
	f.board = "test-nano"
	return f
}

// checkExtlinuxImage checks a built U-Boot extlinux image with independent
// tools: sfdisk reads the GPT (the ESP first, alone legacy BIOS bootable,
// as U-Boot's "part list -bootable" wants); the ESP passes fsck.vfat;
// mtools shows extlinux.conf at its fixed size, with DEFAULT on slot a,
// and every file its labels name on the ESP, the device tree holding
// wantDTB. It returns the ESP as an image file, for mtools' -i.
func checkExtlinuxImage(t *testing.T, img, wantDTB string) string {
	t.Helper()
	pt := readSfdisk(t, img)
	want := []string{contract.LabelESP, contract.SlotA.Label(), contract.SlotB.Label(), contract.LabelData}
	var names []string
	for i, p := range pt.Partitions {
		names = append(names, p.Name)
		if bootable := strings.Contains(p.Attrs, "LegacyBIOSBootable"); bootable != (i == 0) {
			t.Errorf("partition %d (%s) attrs %q: want only the ESP legacy BIOS bootable", i+1, p.Name, p.Attrs)
		}
	}
	if pt.Label != "gpt" || strings.Join(names, " ") != strings.Join(want, " ") || !strings.EqualFold(pt.Partitions[0].Type, contract.TypeESP) {
		t.Fatalf("sfdisk --json: label %s, partitions %v, first type %s; want gpt with %v, the ESP first", pt.Label, names, pt.Partitions[0].Type, want)
	}
	esp := fatPartition(t, img, pt.Partitions[0].Start, pt.Partitions[0].Size)
	files := runTool(t, "mdir", "-i", esp, "-/", "-b", "::/")
	conf := runTool(t, "mtype", "-i", esp, "::/"+contract.ExtlinuxConf)
	if len(conf) != contract.ExtlinuxConfSize {
		t.Errorf("extlinux.conf is %d bytes, want %d", len(conf), contract.ExtlinuxConfSize)
	}
	if !strings.Contains(conf, "\nDEFAULT cairn-a\n") || !strings.Contains(conf, "\nLABEL cairn-a\n") || strings.Contains(conf, "LABEL cairn-b") {
		t.Errorf("extlinux.conf:\n%s", conf)
	}
	var named []string
	for _, line := range strings.Split(conf, "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && (f[0] == "LINUX" || f[0] == "INITRD" || f[0] == "FDT") {
			named = append(named, f[1])
			if !strings.Contains(files, "::"+f[1]+"\n") {
				t.Errorf("extlinux.conf's %s names %s, which the ESP lacks:\n%s", f[0], f[1], files)
			}
		}
		if len(f) > 0 && f[0] == "APPEND" && !strings.HasSuffix(line, " "+contract.ExtlinuxParam+" "+contract.SlotOption(contract.SlotA)) {
			t.Errorf("APPEND line %q", line)
		}
	}
	if len(named) != 3 {
		t.Errorf("extlinux.conf names %v: want a kernel, an initramfs and a device tree", named)
	}
	if dtb := runTool(t, "mtype", "-i", esp, "::/"+contract.SlotA.BootDir()+"/tegra210-p3450-0000.dtb"); dtb != wantDTB {
		t.Errorf("the device tree on the ESP is %d bytes, not the kernel image's %d", len(dtb), len(wantDTB))
	}
	if flag := runTool(t, "mtype", "-i", esp, "::/"+contract.ExtlinuxTrialFile); len(flag) != contract.ExtlinuxTrialSize || !strings.Contains(flag, "\ntrial=none\n") {
		t.Errorf("the trial flag:\n%s", flag)
	}
	for _, name := range []string{contract.SlotB.BootDir() + "/"} {
		if strings.Contains(files, "::/"+name) {
			t.Errorf("a fresh image has %s:\n%s", name, files)
		}
	}
	return esp
}

// checkExtlinuxArtifact checks the update artifact in the layout
// directory oci against esp, the ESP of a raw image of the same build
// (checkExtlinuxImage): its board files layer holds one file, the device
// tree, under the name extlinux.conf's FDT line gives it in slot a's
// directory (where an upgrade's Install puts it for slot b), with the
// size and digest the signed config lists, byte for byte the ESP's.
func checkExtlinuxArtifact(t *testing.T, esp, oci string) {
	t.Helper()
	var fdt string
	for _, line := range strings.Split(runTool(t, "mtype", "-i", esp, "::/"+contract.ExtlinuxConf), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "FDT" {
			fdt = f[1]
		}
	}
	slotDir := "/" + contract.SlotA.BootDir() + "/"
	name, ok := strings.CutPrefix(fdt, slotDir)
	if !ok || strings.Contains(name, "/") {
		t.Fatalf("extlinux.conf's FDT %q is not a file of slot a's %s", fdt, slotDir)
	}
	onESP := runTool(t, "mtype", "-i", esp, "::"+fdt)
	sum := sha256.Sum256([]byte(onESP))
	want := artifact.BootFile{Name: name, Size: int64(len(onESP)), Digest: "sha256:" + hex.EncodeToString(sum[:])}
	a, data := readBoardFiles(t, oci)
	if len(a.Config.BootFiles) != 1 || a.Config.BootFiles[0] != want {
		t.Fatalf("the config lists the board files %+v, want only the ESP's device tree %+v", a.Config.BootFiles, want)
	}
	if string(data[0]) != onESP {
		t.Errorf("the board files layer's %s (%d bytes) is not the ESP's %s (%d bytes)", name, len(data[0]), fdt, len(onESP))
	}
}

// TestBuildExtlinux builds a U-Boot extlinux image from fake inputs,
// checks it with independent tools, and builds it again: byte-identical.
func TestBuildExtlinux(t *testing.T) {
	out := buildTwice(t, nanoFixture(t), "test-test-nano")
	if rec, _ := os.ReadFile(filepath.Join(out, "test-test-nano.inputs.json")); strings.Contains(string(rec), `"role": "bootloader"`) {
		t.Errorf("inputs.json pins a boot loader; U-Boot is the board's:\n%s", rec)
	}
	img := filepath.Join(out, "test-test-nano.img")
	checkExtlinuxImage(t, img, nanoDTB)

	// The per-node files go on the ESP, as on UEFI boards (cairn
	// provision, cairn flash), and leave the menu alone.
	fi, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fi.Close()
	esp, err := disk.OpenESP(fi)
	if err != nil {
		t.Fatal(err)
	}
	if err := esp.WriteFile(contract.NodeFileName, []byte("hostname: nano-1\n")); err != nil {
		t.Fatal(err)
	}
	if err := esp.Close(); err != nil {
		t.Fatal(err)
	}
	checkExtlinuxImage(t, img, nanoDTB)
}

// TestBuildExtlinuxOCI: an extlinux board's update artifact carries the
// board's device tree in its board files layer, as the raw image's ESP
// has it and under the name its FDT line loads, so an upgrade's slot
// boots with it.
func TestBuildExtlinuxOCI(t *testing.T) {
	f := nanoFixture(t)
	raw, err := f.build(t, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	esp := checkExtlinuxImage(t, raw.Image, nanoDTB)
	f.format = "oci"
	res, err := f.build(t, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	checkExtlinuxArtifact(t, esp, res.Image)
}

// TestBuildExtlinuxOCINoFDT: an extlinux board that names no device tree
// (U-Boot hands over its own, as on QEMU's virt machine) has no board
// files, so its update artifact has no board files layer, which the
// artifact's checks would refuse without a listing in the config.
func TestBuildExtlinuxOCINoFDT(t *testing.T) {
	f := nanoFixture(t)
	writeFiles(t, f.boards, map[string]string{"test-nano.yaml": strings.Replace(fmt.Sprintf(nanoBoard, "linux-nano"), "  fdt: nvidia/tegra210-p3450-0000.dtb\n", "  {}\n", 1)})
	f.format = "oci"
	res, err := f.build(t, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	arts, err := push.Open(res.Image)
	if err != nil {
		t.Fatalf("push.Open, which checks the board files layer against the config: %v", err)
	}
	if a := arts[0]; a.Update.BootFiles != nil || len(a.Config.BootFiles) != 0 {
		t.Errorf("board files in an artifact of a board without any: layer %+v, config %+v", a.Update.BootFiles, a.Config.BootFiles)
	}
}

// TestBuildExtlinuxWithoutItsDTB: a kernel image without the board's
// device tree is named with the board's line.
func TestBuildExtlinuxWithoutItsDTB(t *testing.T) {
	f := nanoFixture(t)
	writeFiles(t, f.boards, map[string]string{"test-nano.yaml": fmt.Sprintf(nanoBoard, "linux-nano-nodtb")})
	wantBuildError(t, f, "test-nano.yaml:10:", "the kernel image oci-layout:../oci:linux-nano-nodtb has no /boot/dtbs/nvidia/tegra210-p3450-0000.dtb")
}

// TestBuildRealJetsonNano builds images/minimal.yaml for
// boards/jetson-nano.yaml from Debian's arm64 kernel in .cache/oci (make
// inputs), with stand-ins for our binaries (their content does not matter
// to the layout), and checks it as TestBuildExtlinux does: the board's
// module names and its device tree are Debian's; then its update artifact
// (--format oci), checked as TestBuildExtlinuxOCI does: the board files
// layer holds Debian's device tree as extlinux.conf's FDT line names it.
// Without the kernel input it skips, unless $CI is set.
func TestBuildRealJetsonNano(t *testing.T) {
	root := filepath.Join("..", "..")
	idx, err := os.ReadFile(filepath.Join(root, ".cache", "oci", "index.json"))
	if err != nil || !bytes.Contains(idx, []byte(`"debian-linux-arm64"`)) {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI: the real inputs (make inputs) are missing: %v", err)
		}
		t.Skip("no Debian arm64 kernel in .cache/oci: run make inputs")
	}
	bins := t.TempDir()
	writeFiles(t, bins, map[string]string{"linux-arm64/cairn-init": "#!fake init", "linux-arm64/cairn-agent": "#!fake agent"})
	res := buildReal(t, "jetson-nano", bins, "")
	dtb, err := os.ReadFile(filepath.Join(root, ".cache", "debian", "linux-arm64", "boot", "dtbs", "nvidia", "tegra210-p3450-0000.dtb"))
	if err != nil {
		t.Skipf("Debian's unpacked kernel is not in .cache/debian to compare the device tree with: %v", err)
	}
	esp := checkExtlinuxImage(t, res.Image, string(dtb))
	oci := buildReal(t, "jetson-nano", bins, "oci")
	checkExtlinuxArtifact(t, esp, oci.Image)
}
