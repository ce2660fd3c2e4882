package build

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/agent/update/artifact"
	"github.com/cairn-edge/cairn/builder/output"
	"github.com/cairn-edge/cairn/builder/push"
	"github.com/cairn-edge/cairn/builder/source"
	"github.com/cairn-edge/cairn/builder/spec"
)

// rpiBoard is a Raspberry Pi board on the fixture's fake inputs.
const rpiBoard = `name: test-rpi
arch: arm64
firmware: rpi
kernel:
  image: oci-layout:../oci:%s
  cmdline: ["console=ttyS1,115200"]
  bootModules: [squashfs, ext4]
  modules: [evdev]
rpi:
  firmware:
    image: oci-layout:../oci:%s
    dir: usr/lib/raspi-firmware
    files: [start4.elf, fixup4.dat]
    about: "Debian's raspi-firmware package, non-free-firmware: make inputs"
  dtbs: [broadcom/bcm2711-rpi-4-b.dtb, broadcom/bcm2711-rpi-400.dtb]
  config: [enable_uart=1]
  overlays: [disable-bt]
`

// rpiFixture adds to the fixture an arm64 kernel with the Pi's device
// trees and an overlay, a firmware image, our arm64 binaries and the board.
func rpiFixture(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t)
	k := kernelFiles()
	k["boot/dtbs/broadcom/bcm2711-rpi-4-b.dtb"] = "\xd0\x0d\xfe\xedpi4"
	k["boot/dtbs/broadcom/bcm2711-rpi-400.dtb"] = "\xd0\x0d\xfe\xedpi400"
	k["boot/dtbs/overlays/disable-bt.dtbo"] = "\xd0\x0d\xfe\xedbt"
	pack(t, f.layout, "linux-rpi", "arm64", k)
	pack(t, f.layout, "raspi-firmware", "arm64", map[string]string{
		"usr/lib/raspi-firmware/start4.elf": strings.Repeat("start4", 1000),
		"usr/lib/raspi-firmware/fixup4.dat": "fixup4",
	})
	pack(t, f.layout, "raspi-firmware-empty", "arm64", map[string]string{"usr/lib/raspi-firmware/fixup4.dat": "fixup4"})
	writeFiles(t, f.dir, map[string]string{
		"bin/linux-arm64/cairn-init":  "#!fake init",
		"bin/linux-arm64/cairn-agent": "#!fake agent",
	})
	f.writeRPiBoard(t, "linux-rpi", "raspi-firmware")
	f.board = "test-rpi"
	return f
}

func (f *fixture) writeRPiBoard(t *testing.T, kernelTag, firmwareTag string) {
	t.Helper()
	writeFiles(t, f.boards, map[string]string{"test-rpi.yaml": fmt.Sprintf(rpiBoard, kernelTag, firmwareTag)})
}

// needTool skips a test when name is not installed, unless in CI.
func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("%s is not installed (make deps installs it)", name)
		}
		t.Fatalf("%s is not installed", name)
	}
}

func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	needTool(t, name)
	b, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, b)
	}
	return string(b)
}

// sfdiskTable is sfdisk --json's partition table of img.
type sfdiskTable struct {
	Label      string `json:"label"`
	Partitions []struct {
		Start, Size int64
		Name, Type  string
		Attrs       string `json:"attrs"`
	} `json:"partitions"`
}

func readSfdisk(t *testing.T, img string) sfdiskTable {
	t.Helper()
	var dump struct {
		PartitionTable sfdiskTable `json:"partitiontable"`
	}
	if err := json.Unmarshal([]byte(runTool(t, "sfdisk", "--json", img)), &dump); err != nil {
		t.Fatal(err)
	}
	return dump.PartitionTable
}

// fatPartition copies the FAT partition of img at start (size sectors)
// into a file of its own, checks it with fsck.vfat -n and returns the
// file, for mtools' -i.
func fatPartition(t *testing.T, img string, start, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "part.img")
	runTool(t, "dd", "if="+img, "of="+p, "bs=512", fmt.Sprintf("skip=%d", start), fmt.Sprintf("count=%d", size), "status=none")
	runTool(t, "fsck.vfat", "-n", p)
	return p
}

// buildReal builds images/minimal.yaml for the repository's board with
// the real inputs in .cache/oci and the binaries in bins, in format
// (output.Formats; "" is raw).
func buildReal(t *testing.T, board, bins, format string) *Result {
	t.Helper()
	root := filepath.Join("..", "..")
	s, err := spec.LoadSpec(filepath.Join(root, "images", "minimal.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := spec.LoadBoard(filepath.Join(root, "boards"), board)
	if err != nil {
		t.Fatal(err)
	}
	c, err := source.OpenCache(filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Build(context.Background(), spec.Merge(s, b), Options{OutDir: t.TempDir(), Cache: c, BinDir: bins, PKIDir: filepath.Join(t.TempDir(), "pki"), Format: format})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("minimal-%s: %d MiB, %d MiB mapped, slot %d KiB, initramfs %d KiB, built in %s", board, res.ImageSize>>20, res.MappedBytes>>20, res.SlotSize>>10, res.InitramfsSize>>10, res.Took)
	return res
}

// checkRPiImage checks a built Raspberry Pi image with independent tools:
// sfdisk reads the GPT, fdisk -t dos the hybrid MBR; each FAT passes
// fsck.vfat; mtools shows autoboot.txt, config.txt and cmdline.txt and the
// board's files on BOOT-A. It returns BOOT-A's file list and the three
// FAT partitions as image files.
func checkRPiImage(t *testing.T, img string, dtbs, firmware []string) (string, []string) {
	t.Helper()
	pt := readSfdisk(t, img)
	want := []string{contract.RPiAutoLabel, contract.SlotA.RPiBootLabel(), contract.SlotB.RPiBootLabel(), contract.SlotA.Label(), contract.SlotB.Label(), contract.LabelData}
	var names []string
	for _, p := range pt.Partitions {
		names = append(names, p.Name)
	}
	if pt.Label != "gpt" || strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("sfdisk --json: label %s, partitions %v; want gpt with %v", pt.Label, names, want)
	}
	dos := runTool(t, "fdisk", "-t", "dos", "-l", "-o", "Device,Start,Sectors,Id", img)
	rows := map[string]bool{}
	for _, line := range strings.Split(dos, "\n") {
		if f := strings.Fields(line); len(f) == 4 && strings.HasPrefix(f[0], img) {
			rows[strings.Join(f[1:], " ")] = true
		}
	}
	for i, p := range pt.Partitions[:3] {
		if row := fmt.Sprintf("%d %d c", p.Start, p.Size); !rows[row] {
			t.Errorf("the hybrid MBR lacks entry %d (%s) %q:\n%s", i+1, p.Name, row, dos)
		}
	}
	if !rows[fmt.Sprintf("1 %d ee", pt.Partitions[5].Start+pt.Partitions[5].Size+2048-1)] || len(rows) != 4 {
		t.Errorf("the hybrid MBR: want three FAT entries and the 0xEE one:\n%s", dos)
	}
	parts := make([]string, 3)
	for i, p := range pt.Partitions[:3] {
		parts[i] = fatPartition(t, img, p.Start, p.Size)
	}
	auto := runTool(t, "mtype", "-i", parts[0], "::"+contract.RPiAutobootFile)
	if !strings.HasPrefix(auto, "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n") {
		t.Errorf("autoboot.txt:\n%s", auto)
	}
	config := runTool(t, "mtype", "-i", parts[1], "::"+contract.RPiConfigFile)
	for _, line := range []string{"enable_uart=1\n", "kernel=" + contract.RPiKernelFile + "\n", "initramfs " + contract.RPiInitrdFile + " followkernel\n", "cmdline=" + contract.RPiCmdlineFile + "\n"} {
		if !strings.Contains(config, line) {
			t.Errorf("config.txt lacks %q:\n%s", line, config)
		}
	}
	cmdline := runTool(t, "mtype", "-i", parts[1], "::"+contract.RPiCmdlineFile)
	if !strings.HasSuffix(cmdline, "console=ttyS1,115200 "+contract.SlotOption(contract.SlotA)+"\n") || strings.Count(cmdline, "\n") != 1 {
		t.Errorf("cmdline.txt: %q", cmdline)
	}
	files := runTool(t, "mdir", "-i", parts[1], "-/", "-b", "::/")
	for _, name := range append(append([]string{contract.RPiKernelFile, contract.RPiInitrdFile, contract.RPiStampFile}, dtbs...), firmware...) {
		if !strings.Contains(files, "::/"+name+"\n") {
			t.Errorf("%s lacks %s:\n%s", contract.SlotA.RPiBootLabel(), name, files)
		}
	}
	if empty := runTool(t, "mdir", "-i", parts[2], "::"); !strings.Contains(empty, "No files") {
		t.Errorf("%s on a fresh image holds:\n%s", contract.SlotB.RPiBootLabel(), empty)
	}
	return files, parts
}

// TestBuildRPi builds a Raspberry Pi image from fake inputs, checks it with
// independent tools, and builds it again: byte-identical.
func TestBuildRPi(t *testing.T) {
	out := buildTwice(t, rpiFixture(t), "test-test-rpi")
	rec, _ := os.ReadFile(filepath.Join(out, "test-test-rpi.inputs.json"))
	if !strings.Contains(string(rec), `"role": "firmware"`) || strings.Contains(string(rec), `"role": "bootloader"`) {
		t.Errorf("inputs.json should pin the firmware and no boot loader:\n%s", rec)
	}
	img := filepath.Join(out, "test-test-rpi.img")
	files, _ := checkRPiImage(t, img, []string{"bcm2711-rpi-4-b.dtb", "bcm2711-rpi-400.dtb"}, []string{"start4.elf", "fixup4.dat"})
	if !strings.Contains(files, "::/overlays/disable-bt.dtbo\n") {
		t.Errorf("BOOT-A lacks the overlay:\n%s", files)
	}
	runTool(t, "bmaptool", "copy", "--bmap", filepath.Join(out, "test-test-rpi.bmap"), img, filepath.Join(t.TempDir(), "flashed.img"))
}

// TestBuildRPiOCI: a Raspberry Pi's update artifact carries the board
// files layer, and each file in it is the one the raw image's BOOT-A
// holds (config.txt: the board's part of BOOT-A's), so an upgrade's
// Install writes what a fresh card has.
func TestBuildRPiOCI(t *testing.T) {
	f := rpiFixture(t)
	raw, err := f.build(t, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, parts := checkRPiImage(t, raw.Image, []string{"bcm2711-rpi-4-b.dtb", "bcm2711-rpi-400.dtb"}, []string{"start4.elf", "fixup4.dat"})
	f.format = "oci"
	res, err := f.build(t, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a, data := readBoardFiles(t, res.Image)
	var names []string
	for i, bf := range a.Config.BootFiles {
		names = append(names, bf.Name)
		onCard := runTool(t, "mtype", "-i", parts[1], "::"+bf.Name)
		if bf.Name == contract.RPiConfigFile {
			if !strings.HasPrefix(onCard, string(data[i])) || !strings.Contains(string(data[i]), "enable_uart=1\n") {
				t.Errorf("the layer's config.txt %q is not the board's part of BOOT-A's %q", data[i], onCard)
			}
			continue
		}
		if onCard != string(data[i]) {
			t.Errorf("the layer's %s (%d bytes) is not BOOT-A's (%d bytes)", bf.Name, len(data[i]), len(onCard))
		}
	}
	want := "bcm2711-rpi-4-b.dtb bcm2711-rpi-400.dtb config.txt fixup4.dat overlays/disable-bt.dtbo start4.elf"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("board files %q, want %q", got, want)
	}
}

// readBoardFiles opens the update artifact in the layout directory oci
// as cairn push does (which checks the board files layer's digest and
// size against the manifest) and reads its board files layer: a tar of
// the files the config lists, each of the size and digest listed
// (artifact.ReadBootFiles). It returns the artifact and the files'
// contents in the config's order.
func readBoardFiles(t *testing.T, oci string) (*push.Artifact, [][]byte) {
	t.Helper()
	arts, err := push.Open(oci)
	if err != nil {
		t.Fatalf("push.Open, which checks the board files layer: %v", err)
	}
	a := arts[0]
	d := a.Update.BootFiles
	if d == nil || d.MediaType != artifact.BootFilesMediaType || d.Annotations[artifact.AnnotationTitle] != output.BootFilesTitle {
		t.Fatalf("no %s layer titled %s: %+v", artifact.BootFilesMediaType, output.BootFilesTitle, a.Update.Manifest.Layers)
	}
	layer, err := os.Open(filepath.Join(oci, "blobs", "sha256", strings.TrimPrefix(d.Digest, "sha256:")))
	if err != nil {
		t.Fatal(err)
	}
	defer layer.Close()
	data, err := artifact.ReadBootFiles(layer, a.Config.BootFiles)
	if err != nil {
		t.Fatal(err)
	}
	return a, data
}

// TestBuildRPiBadInputs: a firmware file, DTB or overlay missing from the
// inputs is named with the input it should come from.
func TestBuildRPiBadInputs(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, f *fixture)
		wantErr []string
	}{
		{"firmware file missing", func(t *testing.T, f *fixture) {
			f.writeRPiBoard(t, "linux-rpi", "raspi-firmware-empty")
		}, []string{"test-rpi.yaml:13:", "usr/lib/raspi-firmware/start4.elf is not in oci-layout:../oci:raspi-firmware-empty (Debian's raspi-firmware package, non-free-firmware: make inputs)"}},
		{"firmware image missing", func(t *testing.T, f *fixture) {
			f.writeRPiBoard(t, "linux-rpi", "no-such-firmware")
		}, []string{`no image tagged "no-such-firmware"`, "(the firmware image: Debian's raspi-firmware package"}},
		{"kernel without the board's DTB", func(t *testing.T, f *fixture) {
			f.writeRPiBoard(t, "linux-arm64", "raspi-firmware")
		}, []string{"test-rpi.yaml:15:", "the kernel image oci-layout:../oci:linux-arm64 has no /boot/dtbs/broadcom/bcm2711-rpi-4-b.dtb"}},
		{"spec overlay missing", func(t *testing.T, f *fixture) {
			writeFiles(t, f.dir, map[string]string{"images/test.yaml": "name: test\nversion: 1.0.0\nrpi:\n  overlays: [gpio-fan]\n"})
		}, []string{"test.yaml:4: overlay gpio-fan", "/boot/dtbs/overlays/gpio-fan.dtbo"}},
		{"spec config line choosing boot files", func(t *testing.T, f *fixture) {
			writeFiles(t, f.dir, map[string]string{"images/test.yaml": "name: test\nversion: 1.0.0\nrpi:\n  config:\n    - hdmi_safe=1\n    - kernel=other.img\n"})
		}, []string{"test.yaml:6: rpi.config[1]:", `"kernel=other.img" chooses boot files`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := rpiFixture(t)
			tt.setup(t, f)
			wantBuildError(t, f, tt.wantErr...)
		})
	}
}

// buildTwice builds f twice and checks that the image, its block map and
// its inputs record, named base.*, are byte-identical; it returns the
// first output directory.
func buildTwice(t *testing.T, f *fixture, base string) string {
	t.Helper()
	var outs [2]string
	for i := range outs {
		outs[i] = t.TempDir()
		if _, err := f.build(t, outs[i]); err != nil {
			t.Fatal(err)
		}
	}
	for _, ext := range []string{".img", ".bmap", ".inputs.json"} {
		a, _ := os.ReadFile(filepath.Join(outs[0], base+ext))
		b, _ := os.ReadFile(filepath.Join(outs[1], base+ext))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s differs between two builds of the same inputs (%d vs %d bytes)", base+ext, len(a), len(b))
		}
	}
	return outs[0]
}

// wantBuildError builds f, which must fail with an error saying each of
// want, and leave nothing in the output directory.
func wantBuildError(t *testing.T, f *fixture, want ...string) {
	t.Helper()
	out := t.TempDir()
	_, err := f.build(t, out)
	for _, w := range want {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("Build error = %v, want it to contain %q", err, w)
		}
	}
	if left, _ := os.ReadDir(out); len(left) != 0 {
		t.Errorf("a failed build left %v in the output directory", left)
	}
}

// TestBuildRealRPi4 builds images/minimal.yaml for boards/rpi4.yaml from
// the real inputs in .cache/oci (make inputs) and our binaries in out/bin
// (make binaries), and checks it as TestBuildRPi does. Without them it
// skips, unless $CI is set.
func TestBuildRealRPi4(t *testing.T) {
	root := filepath.Join("..", "..")
	layout := filepath.Join(root, ".cache", "oci", "index.json")
	idx, err := os.ReadFile(layout)
	bins := filepath.Join(root, "out", "bin")
	_, binErr := os.Stat(filepath.Join(bins, "linux-arm64", "cairn-init"))
	if err != nil || binErr != nil || !bytes.Contains(idx, []byte(`"debian-raspi-firmware"`)) || !bytes.Contains(idx, []byte(`"debian-linux-arm64"`)) {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI: the real inputs (make inputs) or binaries (make binaries) are missing: %v %v", err, binErr)
		}
		t.Skip("no real inputs in .cache/oci or no arm64 binaries in out/bin: run make inputs binaries")
	}
	res := buildReal(t, "rpi4", bins, "")
	checkRPiImage(t, res.Image, []string{"bcm2711-rpi-4-b.dtb", "bcm2711-rpi-400.dtb", "bcm2711-rpi-cm4-io.dtb"}, []string{"start4.elf", "fixup4.dat"})
}
