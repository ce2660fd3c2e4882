package build

import (
	"bytes"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/builder/kmod"
	"github.com/cairn-edge/cairn/builder/source"
	"github.com/cairn-edge/cairn/builder/spec"
)

// standIn plays the kernel image a board leaves to its user (its
// kernel.about: boards/rpi5.yaml, boards/jetson-orin-nano.yaml) with
// Debian's arm64 kernel, which boots neither board (Debian 12 has no
// BCM2712 or Tegra234 support): the tree the board's kernel.image comment
// asks for, made of Debian's /boot/vmlinuz and /lib/modules/<version> as
// make inputs leaves them unpacked in .cache/debian/linux-arm64, packed
// as a user packs theirs (`cairn input pack --arch arm64 --tag <tag>`,
// source.PackDir) into a temporary layout, never into .cache/oci. A build
// from it proves the build path of the real board file (its modules,
// device trees, command line and the layout its firmware reads), not a
// boot.
type standIn struct {
	// board is the board file's name; tag is the tag its kernel.image
	// names in ../.cache/oci.
	board, tag string
	// dtbs maps each device tree the board needs, under /boot/dtbs, to
	// the Debian one copied under that name: a stand-in that boots nothing.
	dtbs map[string]string
	// lacks are the board's modules that Debian's kernel does not have
	// (no .ko, not built in), as their paths in the board's own kernel,
	// which builds them in. The build must first refuse the stand-in,
	// naming the first; then the stand-in's modules.builtin lists them,
	// as the board's kernel's does: no .ko is made up, and the image
	// carries no driver for them.
	lacks []string
	// inputs are the tags in .cache/oci the board also names.
	inputs []string
}

// build packs the stand-in and builds images/minimal.yaml for a copy of
// the board file in which only kernel.image points elsewhere, at the
// temporary layout. It returns the result and the packed tree. Without
// Debian's unpacked kernel, the board's other inputs or our arm64
// binaries (make inputs binaries) it skips, unless $CI is set.
func (s standIn) build(t *testing.T) (*Result, string) {
	t.Helper()
	root := filepath.Join("..", "..")
	debian := filepath.Join(root, ".cache", "debian", "linux-arm64")
	bins := filepath.Join(root, "out", "bin")
	var missing []string
	if _, err := os.Stat(filepath.Join(debian, "boot", "vmlinuz")); err != nil {
		missing = append(missing, "Debian's unpacked arm64 kernel in .cache/debian (make inputs)")
	}
	if _, err := os.Stat(filepath.Join(bins, "linux-arm64", "cairn-init")); err != nil {
		missing = append(missing, "the arm64 binaries in out/bin (make binaries)")
	}
	idx, _ := os.ReadFile(filepath.Join(root, ".cache", "oci", "index.json"))
	for _, tag := range s.inputs {
		if !bytes.Contains(idx, []byte(strconv.Quote(tag))) {
			missing = append(missing, tag+" in .cache/oci (make inputs)")
		}
	}
	if len(missing) > 0 {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI: missing %s", strings.Join(missing, "; "))
		}
		t.Skipf("missing %s", strings.Join(missing, "; "))
	}

	tree := t.TempDir()
	files := map[string]string{"boot/vmlinuz": readString(t, filepath.Join(debian, "boot", "vmlinuz"))}
	for name, from := range s.dtbs {
		files["boot/dtbs/"+name] = readString(t, filepath.Join(debian, "boot", "dtbs", from))
	}
	writeFiles(t, tree, files)
	if err := os.CopyFS(filepath.Join(tree, "lib", "modules"), os.DirFS(filepath.Join(debian, "lib", "modules"))); err != nil {
		t.Fatal(err)
	}
	version, lacks := lackedModules(t, tree, filepath.Join(root, "boards"), s.board)
	var want []string
	for _, p := range s.lacks {
		want = append(want, kmod.Name(p))
	}
	if !slices.Equal(lacks, want) {
		t.Fatalf("Debian's arm64 kernel %s lacks %v of boards/%s.yaml's modules, the stand-in expects %v: update its lacks", version, lacks, s.board, want)
	}

	f := &fixture{dir: t.TempDir(), specFile: filepath.Join(root, "images", "minimal.yaml"), binDir: bins, board: s.board}
	f.layout, f.boards = filepath.Join(f.dir, "oci"), filepath.Join(f.dir, "boards")
	board := readString(t, filepath.Join(root, "boards", s.board+".yaml"))
	kernelLine := "image: oci-layout:../.cache/oci:" + s.tag + "\n"
	if strings.Count(board, kernelLine) != 1 {
		t.Fatalf("boards/%s.yaml has no line %q once", s.board, kernelLine)
	}
	writeFiles(t, f.boards, map[string]string{s.board + ".yaml": strings.Replace(board, kernelLine, "image: oci-layout:../oci:"+s.tag+"\n", 1)})
	// The board's other inputs, read where the real board file finds them.
	cache, err := filepath.Abs(filepath.Join(root, ".cache"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(cache, filepath.Join(f.dir, ".cache")); err != nil {
		t.Fatal(err)
	}

	packTree := func() {
		t.Helper()
		if _, err := source.PackDir(tree, "arm64", f.layout, s.tag); err != nil {
			t.Fatal(err)
		}
	}
	if len(lacks) > 0 {
		packTree()
		wantBuildError(t, f, fmt.Sprintf("kernel module %q is not in kernel %s", lacks[0], version))
		builtin := filepath.Join(tree, "lib", "modules", version, "modules.builtin")
		writeFiles(t, filepath.Dir(builtin), map[string]string{"modules.builtin": readString(t, builtin) + strings.Join(s.lacks, "\n") + "\n"})
		t.Logf("Debian's arm64 kernel %s lacks %v, which boards/%s.yaml names: the stand-in lists them in its modules.builtin, as the board's own kernel builds them in", version, lacks, s.board)
	}
	packTree()
	res, err := f.build(t, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("minimal-%s on the stand-in kernel %s: %d MiB, %d MiB mapped, slot %d KiB, initramfs %d KiB, built in %s", s.board, res.KernelVersion, res.ImageSize>>20, res.MappedBytes>>20, res.SlotSize>>10, res.InitramfsSize>>10, res.Took)
	return res, tree
}

// lackedModules returns the kernel version under tree's /lib/modules and
// the board's modules (bootModules, then modules) that it has neither as
// a file nor in modules.builtin, read from the tree's files, not through
// the builder's module index (kmod.Name only spells the names).
func lackedModules(t *testing.T, tree, boards, board string) (string, []string) {
	t.Helper()
	b, err := spec.LoadBoard(boards, board)
	if err != nil {
		t.Fatal(err)
	}
	versions, err := os.ReadDir(filepath.Join(tree, "lib", "modules"))
	if err != nil || len(versions) != 1 {
		t.Fatalf("the stand-in holds kernel versions %v (%v), want one", versions, err)
	}
	dir := filepath.Join(tree, "lib", "modules", versions[0].Name())
	have := map[string]bool{}
	for _, p := range strings.Fields(readString(t, filepath.Join(dir, "modules.builtin"))) {
		have[kmod.Name(p)] = true
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".ko") {
			have[kmod.Name(p)] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var lacks []string
	for _, m := range slices.Concat(b.Kernel.BootModules, b.Kernel.Modules) {
		if !have[kmod.Name(m)] {
			lacks = append(lacks, kmod.Name(m))
		}
	}
	return versions[0].Name(), lacks
}

// names are the partitions' GPT labels, in order.
func (pt sfdiskTable) names() []string {
	var names []string
	for _, p := range pt.Partitions {
		names = append(names, p.Name)
	}
	return names
}

func readString(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fatFiles lists the files of a FAT partition image (mdir), directories
// left out, and checks that each of same holds the content of the file
// it maps to (mtype).
func fatFiles(t *testing.T, part string, same map[string]string) []string {
	t.Helper()
	var files []string
	for _, line := range strings.Split(runTool(t, "mdir", "-i", part, "-/", "-b", "::/"), "\n") {
		if name, ok := strings.CutPrefix(line, "::/"); ok && !strings.HasSuffix(name, "/") {
			files = append(files, name)
		}
	}
	for name, file := range same {
		if got, want := runTool(t, "mtype", "-i", part, "::/"+name), readString(t, file); got != want {
			t.Errorf("%s on the FAT is %d bytes, not the stand-in's %s (%d bytes)", name, len(got), file, len(want))
		}
	}
	return files
}

// TestBuildRealRPi5 builds images/minimal.yaml for boards/rpi5.yaml from a
// stand-in kernel (standIn): Debian's arm64 kernel, and as
// /boot/dtbs/broadcom/bcm2712-rpi-5-b.dtb a copy of Debian's
// bcm2711-rpi-4-b.dtb under that name, which boots nothing. Debian's
// kernel lacks sdhci_brcmstb, the board's SD card driver
// (MMC_SDHCI_BRCMSTB depends on ARCH_BRCMSTB, which Debian 12's arm64
// config leaves unset); Raspberry Pi's bcm2712_defconfig sets
// ARCH_BRCMSTB, so there the driver takes its default, y: built in. So the
// build first refuses the stand-in, naming sdhci_brcmstb, then builds it
// with the driver listed as built in, as a Pi 5 kernel lists it (the image
// carries no SD card driver). It checks the Pi layout with independent
// tools: sfdisk reads the GPT, fdisk -t dos the
// hybrid MBR (the three FAT partitions and the 0xEE entry, nothing else);
// each FAT passes fsck.vfat; mtools shows autoboot.txt, config.txt with
// the board's lines, cmdline.txt on the debug UART (ttyAMA10), and on
// BOOT-A exactly the kernel, the initramfs, the stamp and the stand-in's
// device tree, no firmware files: the Pi 5's EEPROM needs none.
func TestBuildRealRPi5(t *testing.T) {
	const dtb = "bcm2712-rpi-5-b.dtb"
	res, tree := standIn{
		board: "rpi5", tag: "rpi5-kernel",
		dtbs:  map[string]string{"broadcom/" + dtb: "broadcom/bcm2711-rpi-4-b.dtb"},
		lacks: []string{"kernel/drivers/mmc/host/sdhci-brcmstb.ko"},
	}.build(t)

	pt := readSfdisk(t, res.Image)
	names := pt.names()
	if want := []string{contract.RPiAutoLabel, contract.SlotA.RPiBootLabel(), contract.SlotB.RPiBootLabel(), contract.SlotA.Label(), contract.SlotB.Label(), contract.LabelData}; pt.Label != "gpt" || !slices.Equal(names, want) {
		t.Fatalf("sfdisk --json: label %s, partitions %v; want gpt with %v", pt.Label, names, want)
	}
	last := pt.Partitions[len(pt.Partitions)-1]
	wantMBR := map[string]bool{fmt.Sprintf("1 %d ee", last.Start+last.Size+2048-1): true}
	for _, p := range pt.Partitions[:3] {
		wantMBR[fmt.Sprintf("%d %d c", p.Start, p.Size)] = true
	}
	dos := runTool(t, "fdisk", "-t", "dos", "-l", "-o", "Device,Start,Sectors,Id", res.Image)
	mbr := map[string]bool{}
	for _, line := range strings.Split(dos, "\n") {
		if f := strings.Fields(line); len(f) == 4 && strings.HasPrefix(f[0], res.Image) {
			mbr[strings.Join(f[1:], " ")] = true
		}
	}
	if !maps.Equal(mbr, wantMBR) {
		t.Errorf("the hybrid MBR (start, sectors, id) %v, want %v:\n%s", mbr, wantMBR, dos)
	}

	var parts []string
	for _, p := range pt.Partitions[:3] {
		parts = append(parts, fatPartition(t, res.Image, p.Start, p.Size))
	}
	if auto := runTool(t, "mtype", "-i", parts[0], "::"+contract.RPiAutobootFile); !strings.HasPrefix(auto, "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n") {
		t.Errorf("autoboot.txt:\n%s", auto)
	}
	config := runTool(t, "mtype", "-i", parts[1], "::"+contract.RPiConfigFile)
	for _, line := range []string{"enable_uart=1", "kernel=" + contract.RPiKernelFile, "initramfs " + contract.RPiInitrdFile + " followkernel", "cmdline=" + contract.RPiCmdlineFile} {
		if !strings.Contains(config, "\n"+line+"\n") && !strings.HasPrefix(config, line+"\n") {
			t.Errorf("config.txt lacks %q:\n%s", line, config)
		}
	}
	if cmdline := runTool(t, "mtype", "-i", parts[1], "::"+contract.RPiCmdlineFile); !strings.HasSuffix(cmdline, " console=tty0 console=ttyAMA10,115200 "+contract.SlotOption(contract.SlotA)+"\n") || strings.Count(cmdline, "\n") != 1 {
		t.Errorf("cmdline.txt: %q", cmdline)
	}
	bootA := fatFiles(t, parts[1], map[string]string{
		contract.RPiKernelFile: filepath.Join(tree, "boot", "vmlinuz"),
		dtb:                    filepath.Join(tree, "boot", "dtbs", "broadcom", dtb),
	})
	want := []string{contract.RPiCmdlineFile, contract.RPiConfigFile, contract.RPiStampFile, contract.RPiInitrdFile, contract.RPiKernelFile, dtb}
	slices.Sort(bootA)
	slices.Sort(want)
	if !slices.Equal(bootA, want) {
		t.Errorf("%s holds %v, want %v (no firmware files)", contract.SlotA.RPiBootLabel(), bootA, want)
	}
	if empty := runTool(t, "mdir", "-i", parts[2], "::"); !strings.Contains(empty, "No files") {
		t.Errorf("%s on a fresh image holds:\n%s", contract.SlotB.RPiBootLabel(), empty)
	}
}

// TestBuildRealJetsonOrinNano builds images/minimal.yaml for
// boards/jetson-orin-nano.yaml from a stand-in kernel (standIn): Debian's
// arm64 kernel (its Image has the EFI stub, and it has every module the
// board names), no device tree, as the board's kernel image has none. It
// checks the UEFI layout with independent tools: sfdisk and sgdisk read
// the GPT (the ESP first); the ESP passes fsck.vfat; mtools shows
// systemd-boot at the removable-media path, its loader.conf and slot a's
// one entry (the Tegra Combined UART's console, no devicetree key), slot
// a's kernel (the stand-in's) and initramfs, and no DTB anywhere.
func TestBuildRealJetsonOrinNano(t *testing.T) {
	res, tree := standIn{board: "jetson-orin-nano", tag: "jetson-orin-kernel", inputs: []string{"debian-systemd-boot-arm64"}}.build(t)

	pt := readSfdisk(t, res.Image)
	names := pt.names()
	if want := []string{contract.LabelESP, contract.SlotA.Label(), contract.SlotB.Label(), contract.LabelData}; pt.Label != "gpt" || !slices.Equal(names, want) || !strings.EqualFold(pt.Partitions[0].Type, contract.TypeESP) {
		t.Fatalf("sfdisk --json: label %s, partitions %v, first type %s; want gpt with %v, the ESP first", pt.Label, names, pt.Partitions[0].Type, want)
	}
	if v := runTool(t, "sgdisk", "-v", res.Image); !strings.Contains(v, "No problems found") {
		t.Errorf("sgdisk -v:\n%s", v)
	}
	esp := fatPartition(t, res.Image, pt.Partitions[0].Start, pt.Partitions[0].Size)
	a := contract.SlotA.BootDir() + "/"
	entry := contract.ESPEntriesDir + "/cairn-00000001-a.conf"
	files := fatFiles(t, esp, map[string]string{a + contract.KernelFile: filepath.Join(tree, "boot", "vmlinuz")})
	want := []string{contract.EFIBootPaths["arm64"], a + "entry.conf", a + contract.InitrdFile, a + contract.KernelFile, contract.ESPLoaderConf, entry}
	slices.Sort(files)
	slices.Sort(want)
	if !slices.Equal(files, want) {
		t.Errorf("the ESP holds %v, want %v (no device tree)", files, want)
	}
	body := runTool(t, "mtype", "-i", esp, "::/"+entry)
	for _, line := range []string{"linux /" + a + contract.KernelFile, "initrd /" + a + contract.InitrdFile} {
		if !strings.Contains(body, "\n"+line+"\n") {
			t.Errorf("entry %s lacks %q:\n%s", entry, line, body)
		}
	}
	if !strings.Contains(body, " console=tty0 console=ttyTCU0,115200 "+contract.SlotOption(contract.SlotA)+"\n") || strings.Contains(body, "devicetree") {
		t.Errorf("entry %s: want the board's console and %s, no devicetree:\n%s", entry, contract.SlotOption(contract.SlotA), body)
	}
}
