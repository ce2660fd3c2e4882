package plan

import (
	"context"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/builder/disk"
	"github.com/cairn-edge/cairn/builder/fstree"
	"github.com/cairn-edge/cairn/builder/pki"
	"github.com/cairn-edge/cairn/builder/rootfs"
	"github.com/cairn-edge/cairn/builder/source"
	"github.com/cairn-edge/cairn/builder/spec"
)

// boardsDir and minimalSpec are the repository's own boards and base image.
var (
	boardsDir   = filepath.Join("..", "..", "boards")
	minimalSpec = filepath.Join("..", "..", "images", "minimal.yaml")
)

// fakeInputs stands in for what Resolve finds for img: a kernel tree with
// every module the board names, the board's boot loader binary and our
// binaries. Nothing is fetched: Make only reads these trees.
func fakeInputs(t *testing.T, img *spec.Image) *Inputs {
	t.Helper()
	dir := t.TempDir()
	write := func(p, content string) {
		t.Helper()
		p = filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const ver = "6.1.0-test"
	var dep strings.Builder
	for _, m := range append(append([]string{}, img.BootModules...), img.Modules...) {
		p := "kernel/" + m + ".ko"
		dep.WriteString(p + ":\n")
		write("kernel/lib/modules/"+ver+"/"+p, "module "+m)
	}
	write("kernel/lib/modules/"+ver+"/modules.dep", dep.String())
	write("kernel/lib/modules/"+ver+"/modules.builtin", "")
	write("kernel/boot/vmlinuz", "MZkernel")
	if img.Board.Bootloader.Path != "" {
		write("loader/"+img.Board.Bootloader.Path, "MZ-efi")
	}
	if r := img.RPi; r != nil {
		for _, d := range r.DTBs {
			write("kernel/boot/dtbs/"+d, "dtb "+d)
		}
		for _, f := range r.FirmwareFiles {
			write("firmware/"+r.FirmwareDir+"/"+f, "firmware "+f)
		}
		for _, o := range r.Overlays {
			name, _, _ := strings.Cut(o, ",")
			write("kernel/boot/dtbs/overlays/"+name+".dtbo", "overlay "+name)
		}
	}
	if e := img.Extlinux; e != nil && e.FDT != "" {
		write("kernel/boot/dtbs/"+e.FDT, "dtb "+e.FDT)
	}
	write("bin/linux-"+img.Board.Arch+"/cairn-init", "#!init")
	write("bin/linux-"+img.Board.Arch+"/cairn-agent", "#!agent")

	in := &Inputs{
		kernelIn:   &source.Input{Ref: source.Reference{Raw: img.Kernel.Ref}},
		loaderIn:   &source.Input{Ref: source.Reference{Raw: img.Bootloader.Ref}},
		loaderTree: rootfs.New(filepath.Join(dir, "loader")),
		kernelTree: rootfs.New(filepath.Join(dir, "kernel")),
	}
	if img.Bootloader.Ref != "" {
		in.loaderIn = &source.Input{Ref: source.Reference{Raw: img.Bootloader.Ref}}
	} else {
		in.loaderIn, in.loaderTree = nil, nil
	}
	if img.RPi != nil && img.RPi.Firmware.Ref != "" {
		in.firmwareIn = &source.Input{Ref: source.Reference{Raw: img.RPi.Firmware.Ref}}
		in.firmwareTree = rootfs.New(filepath.Join(dir, "firmware"))
	}
	var err error
	if in.kernel, err = openKernel(in.kernelIn, in.kernelTree); err != nil {
		t.Fatal(err)
	}
	if in.bins, err = findBinaries(filepath.Join(dir, "bin", "linux-"+img.Board.Arch), false, false); err != nil {
		t.Fatal(err)
	}
	return in
}

// TestPlanBoards plans images/minimal.yaml on every board of boards/ and
// checks what goes where, without writing an image.
func TestPlanBoards(t *testing.T) {
	s, err := spec.LoadSpec(minimalSpec)
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(boardsDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no boards in %s: %v", boardsDir, err)
	}
	creds, err := pki.Ensure(t.TempDir(), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	epoch := time.Unix(1704067200, 0).UTC()
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			b, err := spec.LoadBoard(boardsDir, name)
			if err != nil {
				t.Fatal(err)
			}
			img := spec.Merge(s, b)
			p, err := Make(img, fakeInputs(t, img), creds, epoch, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if got, want := p.Name, "minimal-"+name; got != want {
				t.Errorf("Name = %q, want %q", got, want)
			}
			if got := p.Firmware.Family(); got != b.Firmware {
				t.Errorf("firmware part %q, want the board's %q", got, b.Firmware)
			}

			// The slot: PID 1, the agent, the release file naming the board, the modules.
			for _, path := range []string{"sbin/init", "usr/bin/cairn-agent", contract.SlotPath(contract.AgentConfig), contract.SlotPath(contract.ModulesList), "etc/os-release"} {
				if _, ok := p.Slot.Get(path); !ok {
					t.Errorf("slot has no %s", path)
				}
			}
			if got := read(t, p.Slot, contract.SlotPath(contract.ReleaseFile)); !strings.Contains(got, "BOARD="+name+"\n") || !strings.Contains(got, "ARCH="+b.Arch+"\n") {
				t.Errorf("release file = %q, want BOARD=%s and ARCH=%s", got, name, b.Arch)
			}
			// The initramfs: cairn-init as /init and exactly the boot modules in its list.
			if _, ok := p.Initramfs.Get("init"); !ok {
				t.Error("initramfs has no /init")
			}
			if got, want := read(t, p.Initramfs, contract.SlotPath(contract.ModulesList)), strings.Join(b.Kernel.BootModules, "\n")+"\n"; !strings.HasSuffix(got, want) {
				t.Errorf("initramfs module list = %q, want it to end in %q", got, want)
			}
			if _, ok := p.Initramfs.Get("usr/bin/cairn-agent"); ok {
				t.Error("the initramfs carries the agent: it is for reaching the root only")
			}
			// What the boot loader starts: the board's command line, the slot parameter left to the loader.
			if n := len(b.Kernel.Cmdline); len(p.Boot.Cmdline) < n || !slices.Equal(p.Boot.Cmdline[len(p.Boot.Cmdline)-n:], b.Kernel.Cmdline) {
				t.Errorf("command line %q, want it to end in the board's %q", p.Boot.Cmdline, b.Kernel.Cmdline)
			}
			for _, o := range p.Boot.Cmdline {
				if strings.HasPrefix(o, contract.SlotParam+"=") {
					t.Errorf("command line has %s: the boot loader adds it per slot", o)
				}
			}
			if p.Boot.Version != s.Version {
				t.Errorf("boot version %q, want %q", p.Boot.Version, s.Version)
			}
			// The partition table: the family's FAT partitions, the two slots with the arch's root type, data.
			var labels []string
			for _, part := range p.Layout.Partitions {
				labels = append(labels, part.Label)
				if strings.HasPrefix(part.Label, "CAIRN-") && part.Label != contract.LabelData && part.Label != contract.RPiAutoLabel && string(part.Type) != contract.RootTypes[b.Arch] {
					t.Errorf("%s has type %s, want %s's root type", part.Label, part.Type, b.Arch)
				}
			}
			fats, err := p.Firmware.BootPartitions(p.Boot, []byte("initrd"))
			if err != nil {
				t.Fatal(err)
			}
			switch b.Firmware {
			case "uefi":
				checkUEFIBoot(t, b, labels, fats)
			case "rpi":
				checkRPiBoot(t, b, labels, fats)
			case "extlinux":
				checkExtlinuxBoot(t, b, labels, p.Layout, fats)
			default:
				t.Errorf("no check for firmware %s", b.Firmware)
			}
		})
	}
}

// checkUEFIBoot checks a fresh UEFI image's ESP: the loader, slot A's
// files and its entry; nothing of slot B.
func checkUEFIBoot(t *testing.T, b *spec.Board, labels []string, fats map[string]*fstree.Tree) {
	t.Helper()
	if want := []string{contract.LabelESP, contract.SlotA.Label(), contract.SlotB.Label(), contract.LabelData}; !slices.Equal(labels, want) {
		t.Errorf("partitions %v, want %v", labels, want)
	}
	esp := fats[contract.LabelESP]
	if len(fats) != 1 || esp == nil {
		t.Fatalf("FAT partitions %v, want the ESP only", fats)
	}
	for _, path := range []string{contract.EFIBootPaths[b.Arch], contract.ESPLoaderConf, contract.SlotA.BootDir() + "/" + contract.KernelFile, contract.SlotA.BootDir() + "/" + contract.InitrdFile} {
		if _, ok := esp.Get(path); !ok {
			t.Errorf("boot partition has no %s", path)
		}
	}
	var entries []string
	for _, e := range esp.Entries() {
		if strings.HasPrefix(e.Path, contract.ESPEntriesDir+"/") {
			entries = append(entries, e.Path)
			if body := read(t, esp, e.Path); !strings.Contains(body, contract.SlotOption(contract.SlotA)) || !strings.Contains(body, strings.Join(b.Kernel.Cmdline, " ")) {
				t.Errorf("entry %s = %q, want the board's command line and %s", e.Path, body, contract.SlotOption(contract.SlotA))
			}
		}
		if strings.HasPrefix(e.Path, contract.SlotB.BootDir()) {
			t.Errorf("a fresh image has %s: slot B is empty until an update", e.Path)
		}
	}
	if len(entries) != 1 {
		t.Errorf("boot entries %v, want one for slot A", entries)
	}
}

// checkRPiBoot checks a fresh Raspberry Pi image's FAT partitions:
// autoboot.txt on CAIRN-AUTO, slot A's files on BOOT-A, BOOT-B empty.
func checkRPiBoot(t *testing.T, b *spec.Board, labels []string, fats map[string]*fstree.Tree) {
	t.Helper()
	bootA, bootB := contract.SlotA.RPiBootLabel(), contract.SlotB.RPiBootLabel()
	if want := []string{contract.RPiAutoLabel, bootA, bootB, contract.SlotA.Label(), contract.SlotB.Label(), contract.LabelData}; !slices.Equal(labels, want) {
		t.Errorf("partitions %v, want %v", labels, want)
	}
	if len(fats) != 3 {
		t.Fatalf("FAT partitions %v, want three", fats)
	}
	if got := read(t, fats[contract.RPiAutoLabel], contract.RPiAutobootFile); !strings.Contains(got, "tryboot_a_b=1") || !strings.Contains(got, "boot_partition=2") {
		t.Errorf("autoboot.txt = %q", got)
	}
	a := fats[bootA]
	want := []string{contract.RPiKernelFile, contract.RPiInitrdFile, contract.RPiCmdlineFile, contract.RPiConfigFile, contract.RPiStampFile}
	for _, d := range b.RPi.DTBs {
		want = append(want, path.Base(d))
	}
	if f := b.RPi.Firmware; f != nil {
		for _, name := range f.Files {
			want = append(want, path.Base(name))
		}
	}
	for _, name := range want {
		if _, ok := a.Get(name); !ok {
			t.Errorf("%s has no %s", bootA, name)
		}
	}
	if got := read(t, a, contract.RPiCmdlineFile); !strings.HasSuffix(got, strings.Join(b.Kernel.Cmdline, " ")+" "+contract.SlotOption(contract.SlotA)+"\n") {
		t.Errorf("cmdline.txt = %q, want the board's command line and %s", got, contract.SlotOption(contract.SlotA))
	}
	config := read(t, a, contract.RPiConfigFile)
	for _, line := range b.RPi.Config {
		if !strings.Contains(config, line+"\n") {
			t.Errorf("config.txt lacks the board's %q:\n%s", line, config)
		}
	}
	if n := len(fats[bootB].Entries()); n != 0 {
		t.Errorf("%s holds %d entries on a fresh image, want none", bootB, n)
	}
}

// checkExtlinuxBoot checks a fresh U-Boot extlinux image's ESP: the UEFI
// partitions, the ESP alone legacy BIOS bootable; the menu, the trial
// flag, slot A's files and stamp; nothing of slot B.
func checkExtlinuxBoot(t *testing.T, b *spec.Board, labels []string, l disk.Layout, fats map[string]*fstree.Tree) {
	t.Helper()
	if want := []string{contract.LabelESP, contract.SlotA.Label(), contract.SlotB.Label(), contract.LabelData}; !slices.Equal(labels, want) {
		t.Errorf("partitions %v, want %v", labels, want)
	}
	for i, p := range l.Partitions {
		if p.LegacyBootable != (i == 0) {
			t.Errorf("%s legacy BIOS bootable: %v", p.Label, p.LegacyBootable)
		}
	}
	esp := fats[contract.LabelESP]
	if len(fats) != 1 || esp == nil {
		t.Fatalf("FAT partitions %v, want the ESP only", fats)
	}
	a := contract.SlotA.BootDir() + "/"
	want := []string{contract.ExtlinuxConf, contract.ExtlinuxTrialFile, a + contract.KernelFile, a + contract.InitrdFile, a + contract.ExtlinuxStampName}
	if b.Extlinux != nil && b.Extlinux.FDT != "" {
		want = append(want, a+path.Base(b.Extlinux.FDT))
	}
	var got []string
	for _, e := range esp.Entries() {
		if e.Mode.IsRegular() {
			got = append(got, e.Path)
		}
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("the ESP holds %v, want %v", got, want)
	}
	conf := read(t, esp, contract.ExtlinuxConf)
	for _, line := range []string{"DEFAULT cairn-a\n", "LABEL cairn-a\n", " " + strings.Join(b.Kernel.Cmdline, " ") + " " + contract.ExtlinuxParam + " " + contract.SlotOption(contract.SlotA) + "\n"} {
		if !strings.Contains(conf, line) {
			t.Errorf("extlinux.conf lacks %q:\n%s", line, conf)
		}
	}
	if strings.Contains(conf, "LABEL cairn-b") {
		t.Errorf("a fresh image has a label for slot B:\n%s", conf)
	}
}

// TestPlanUnknownFirmware: a board naming a firmware family Cairn lacks is refused by name.
func TestPlanUnknownFirmware(t *testing.T) {
	s, err := spec.LoadSpec(minimalSpec)
	if err != nil {
		t.Fatal(err)
	}
	b, err := spec.LoadBoard(boardsDir, "qemu-x86_64")
	if err != nil {
		t.Fatal(err)
	}
	b.Firmware = "coreboot"
	img := spec.Merge(s, b)
	_, err = Make(img, fakeInputs(t, img), nil, time.Unix(0, 0), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), `firmware "coreboot" is not one Cairn knows (use one of extlinux, rpi, uefi)`) {
		t.Fatalf("Make error = %v, want the unknown firmware named with the known ones", err)
	}
}

// read returns the content of a file of a planned tree.
func read(t *testing.T, tree *fstree.Tree, p string) string {
	t.Helper()
	e, ok := tree.Get(p)
	if !ok {
		t.Fatalf("no %s", p)
	}
	r, err := e.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestResolveBoardNeedsItsKernel: boards/rpi5.yaml's and
// boards/jetson-orin-nano.yaml's kernels are ones the user supplies;
// without them, Resolve names the input and what it must hold.
func TestResolveBoardNeedsItsKernel(t *testing.T) {
	s, err := spec.LoadSpec(minimalSpec)
	if err != nil {
		t.Fatal(err)
	}
	idx, _ := os.ReadFile(filepath.Join(boardsDir, "..", ".cache", "oci", "index.json"))
	for _, tt := range []struct {
		board, tag string
		want       []string
	}{
		{"rpi5", "rpi5-kernel", []string{"/boot/dtbs/broadcom/bcm2712-rpi-5-b.dtb"}},
		{"jetson-orin-nano", "jetson-orin-kernel", []string{"Tegra234", "/boot/vmlinuz", "/lib/modules/<version>"}},
	} {
		t.Run(tt.board, func(t *testing.T) {
			b, err := spec.LoadBoard(boardsDir, tt.board)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(idx), `"`+tt.tag+`"`) {
				t.Skipf("%s is in .cache/oci", tt.tag)
			}
			c, err := source.OpenCache(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			_, err = Resolve(context.Background(), c, spec.Merge(s, b), t.TempDir())
			for _, want := range append([]string{tt.board + ".yaml:", "oci-layout:../.cache/oci:" + tt.tag, "the board's kernel image is not there"}, tt.want...) {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("Resolve error = %v, want it to contain %q", err, want)
				}
			}
		})
	}
}
