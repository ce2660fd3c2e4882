package build

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/builder/compress"
	"github.com/cairn-edge/cairn/builder/source"
	"github.com/cairn-edge/cairn/builder/spec"
)

// fixture is a self-contained build setup with small fake inputs: a kernel
// image with a few modules, a boot loader image, a board, a spec, cairn-init.
type fixture struct {
	dir, layout, boards, specFile, binDir string
	kernelDigest                          string
	// format is the output format; empty means the default.
	format string
	// compress is the compression of the disk image, if any.
	compress compress.Format
	// board is the board to build for; empty means test-board.
	board string
}

const fakeDep = `kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko
kernel/fs/jbd2/jbd2.ko:
kernel/drivers/block/virtio_blk.ko:
kernel/fs/squashfs/squashfs.ko:
kernel/drivers/input/evdev.ko:
kernel/net/bridge/bridge.ko: kernel/net/802/stp.ko
kernel/net/802/stp.ko:
`

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func pack(t *testing.T, layout, tag, arch string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, files)
	h, err := source.PackDir(dir, arch, layout, tag)
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

func kernelFiles() map[string]string {
	files := map[string]string{
		"boot/vmlinuz":                           strings.Repeat("MZkernel", 4096),
		"lib/modules/6.1.0-test/modules.dep":     fakeDep,
		"lib/modules/6.1.0-test/modules.builtin": "kernel/drivers/tty/serial/8250/8250.ko\n",
	}
	for _, line := range strings.Split(strings.TrimSpace(fakeDep), "\n") {
		p, _, _ := strings.Cut(line, ":")
		files["lib/modules/6.1.0-test/"+p] = "module " + p
	}
	return files
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir()}
	f.layout = filepath.Join(f.dir, "oci")
	f.kernelDigest = pack(t, f.layout, "linux-amd64", "amd64", kernelFiles())
	pack(t, f.layout, "linux-arm64", "arm64", kernelFiles())
	pack(t, f.layout, "no-modules", "amd64", map[string]string{"boot/vmlinuz": "k"})
	pack(t, f.layout, "no-vmlinuz", "amd64", map[string]string{"lib/modules/6.1.0-test/modules.dep": fakeDep})
	pack(t, f.layout, "systemd-boot", "amd64", map[string]string{"usr/lib/systemd/boot/efi/systemd-bootx64.efi": "MZ-efi"})
	pack(t, f.layout, "web", "amd64", map[string]string{"bin/web": "#!fake web server"})
	f.boards = filepath.Join(f.dir, "boards")
	f.writeBoard(t, "oci-layout:../oci:linux-amd64", "[virtio_blk, squashfs, ext4]")
	f.specFile = filepath.Join(f.dir, "images", "test.yaml")
	writeFiles(t, f.dir, map[string]string{
		"images/test.yaml":            "name: test\nversion: 1.0.0\noverlay: [overlay]\ndisk:\n  espSize: 64MiB\n  slotSize: 16MiB\n  dataSize: 16MiB\n",
		"images/overlay/etc/hostname": "cairn\n",
		"bin/linux-amd64/cairn-init":  "#!fake init",
		"bin/linux-amd64/cairn-agent": "#!fake agent",
	})
	f.binDir = filepath.Join(f.dir, "bin")
	return f
}

func (f *fixture) writeBoard(t *testing.T, kernelRef, bootModules string) {
	t.Helper()
	writeFiles(t, f.boards, map[string]string{"test-board.yaml": fmt.Sprintf(`name: test-board
arch: amd64
firmware: uefi
kernel:
  image: %s
  cmdline: [console=ttyS0]
  bootModules: %s
  modules: [evdev]
bootloader:
  image: oci-layout:../oci:systemd-boot
  path: usr/lib/systemd/boot/efi/systemd-bootx64.efi
`, kernelRef, bootModules)})
}

func (f *fixture) build(t *testing.T, out string) (*Result, error) {
	t.Helper()
	s, err := spec.LoadSpec(f.specFile)
	if err != nil {
		return nil, err
	}
	b, err := spec.LoadBoard(f.boards, cmp.Or(f.board, "test-board"))
	if err != nil {
		return nil, err
	}
	c, err := source.OpenCache(filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		return nil, err
	}
	return Build(context.Background(), spec.Merge(s, b), Options{OutDir: out, Cache: c, BinDir: f.binDir, PKIDir: filepath.Join(f.dir, "pki"), Format: f.format, Compress: f.compress})
}

func TestBuildReproducible(t *testing.T) {
	f := newFixture(t)
	var outs [2]string
	for i := range outs {
		outs[i] = filepath.Join(t.TempDir(), "out")
		if _, err := f.build(t, outs[i]); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"test-test-board.img", "test-test-board.bmap", "test-test-board.inputs.json", "test-test-board.node.yaml"} {
		a, _ := os.ReadFile(filepath.Join(outs[0], name))
		b, _ := os.ReadFile(filepath.Join(outs[1], name))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s differs between two builds of the same inputs (%d vs %d bytes)", name, len(a), len(b))
		}
	}
	rec, _ := os.ReadFile(filepath.Join(outs[0], "test-test-board.inputs.json"))
	if !strings.Contains(string(rec), f.kernelDigest) {
		t.Errorf("inputs.json does not record the kernel digest %s:\n%s", f.kernelDigest, rec)
	}
}

// TestBuildChecksOut checks the image with independent tools.
func TestBuildChecksOut(t *testing.T) {
	f := newFixture(t)
	out := t.TempDir()
	res, err := f.build(t, out)
	if err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) string {
		t.Helper()
		if _, err := exec.LookPath(name); err != nil {
			t.Skipf("%s is not installed (make deps installs it)", name)
		}
		b, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, b)
		}
		return string(b)
	}
	table := run("sgdisk", "-p", res.Image)
	for _, want := range []string{"ESP", "CAIRN-A", "CAIRN-B", "CAIRN-DATA", "EF00", "8304", "8310"} {
		if !strings.Contains(table, want) {
			t.Errorf("sgdisk -p lacks %q:\n%s", want, table)
		}
	}
	run("sgdisk", "-v", res.Image)
	esp := filepath.Join(t.TempDir(), "esp.img")
	run("dd", "if="+res.Image, "of="+esp, "bs=1M", "skip=1", "count=64", "status=none")
	run("fsck.vfat", "-n", esp)
	files := run("mdir", "-i", esp, "-/", "-b", "::/")
	for _, want := range []string{"::/EFI/BOOT/BOOTX64.EFI", "::/loader/entries/cairn-00000001-a.conf", "::/cairn/a/vmlinuz", "::/cairn/a/initrd"} {
		if !strings.Contains(files, want) {
			t.Errorf("ESP lacks %s:\n%s", want, files)
		}
	}
	entry := run("mtype", "-i", esp, "::/loader/entries/cairn-00000001-a.conf")
	if !strings.Contains(entry, "options transparent_hugepage=never panic=10 console=ttyS0 cairn.slot=a") {
		t.Errorf("boot entry:\n%s", entry)
	}
	slot := filepath.Join(t.TempDir(), "slot.img")
	run("dd", "if="+res.Image, "of="+slot, "bs=1M", "skip=65", "count=16", "status=none")
	list := run("unsquashfs", "-lls", slot)
	for _, want := range []string{"sbin/init", "etc/cairn/release", "etc/hostname", "etc/cairn/api/ca.crt", "lib/modules/6.1.0-test/kernel/fs/jbd2/jbd2.ko", "lib/modules/6.1.0-test/kernel/drivers/input/evdev.ko"} {
		if !strings.Contains(list, want) {
			t.Errorf("slot lacks %s:\n%s", want, list)
		}
	}
	// No node's key is in any image: each gets its own when provisioned.
	if strings.Contains(list, ".key") {
		t.Errorf("the slot holds a key:\n%s", list)
	}
	run("bmaptool", "copy", "--bmap", res.Bmap, res.Image, filepath.Join(t.TempDir(), "flashed.img"))
}

func TestBuildBadInputs(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, f *fixture)
		wantErr string
	}{
		{"unknown module", func(t *testing.T, f *fixture) {
			f.writeBoard(t, "oci-layout:../oci:linux-amd64", "[virtio_blk, nvme]")
		}, `kernel module "nvme" is not in kernel 6.1.0-test`},
		{"kernel of the wrong architecture", func(t *testing.T, f *fixture) {
			f.writeBoard(t, "oci-layout:../oci:linux-arm64", "[virtio_blk]")
		}, "is built for arm64, but the board is amd64"},
		{"kernel without modules", func(t *testing.T, f *fixture) {
			f.writeBoard(t, "oci-layout:../oci:no-modules", "[virtio_blk]")
		}, "kernel image has no /lib/modules"},
		{"kernel without vmlinuz", func(t *testing.T, f *fixture) {
			f.writeBoard(t, "oci-layout:../oci:no-vmlinuz", "[virtio_blk]")
		}, "has no /boot/vmlinuz"},
		{"unknown tag", func(t *testing.T, f *fixture) {
			f.writeBoard(t, "oci-layout:../oci:linux-riscv", "[virtio_blk]")
		}, `no image tagged "linux-riscv"`},
		{"missing layout", func(t *testing.T, f *fixture) {
			f.writeBoard(t, "oci-layout:../nowhere:linux-amd64", "[virtio_blk]")
		}, "is not an OCI layout directory"},
		{"malformed reference", func(t *testing.T, f *fixture) {
			f.writeBoard(t, "'Bad Ref!'", "[virtio_blk]")
		}, "is malformed"},
		{"unreachable registry", func(t *testing.T, f *fixture) {
			f.writeBoard(t, "127.0.0.1:1/kernel:6.1", "[virtio_blk]")
		}, "cannot be fetched"},
		{"digest mismatch", func(t *testing.T, f *fixture) {
			f.writeBoard(t, "oci-layout:../oci:linux-amd64@sha256:"+strings.Repeat("0", 64), "[virtio_blk]")
		}, "no image with digest"},
		{"unreadable overlay", func(t *testing.T, f *fixture) {
			os.RemoveAll(filepath.Join(f.dir, "images", "overlay"))
		}, "overlay"},
		{"slot too small", func(t *testing.T, f *fixture) {
			big := make([]byte, 24<<20)
			rand.NewChaCha8([32]byte{1}).Read(big) // incompressible
			os.WriteFile(filepath.Join(f.dir, "images", "overlay", "big"), big, 0o644)
		}, "raise disk.slotSize"},
		{"no cairn-init", func(t *testing.T, f *fixture) {
			os.RemoveAll(f.binDir)
		}, "make binaries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			tt.setup(t, f)
			out := t.TempDir()
			_, err := f.build(t, out)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Build error = %v, want it to contain %q", err, tt.wantErr)
			}
			if left, _ := os.ReadDir(out); len(left) != 0 {
				t.Errorf("a failed build left %v in the output directory", left)
			}
		})
	}
}

func TestBuildUnwritableOutput(t *testing.T) {
	f := newFixture(t)
	out := filepath.Join(t.TempDir(), "file")
	os.WriteFile(out, nil, 0o644)
	if _, err := f.build(t, out); err == nil || !strings.Contains(err.Error(), "pass -o with a writable directory") {
		t.Fatalf("Build error = %v", err)
	}
}

// TestBuildServices bakes a service's image into the slot as an OCI layout,
// with the container runtime and the agent's configuration.
func TestBuildServices(t *testing.T) {
	f := newFixture(t)
	writeFiles(t, f.dir, map[string]string{
		"images/test.yaml": "name: test\nversion: 1.0.0\ndisk:\n  espSize: 64MiB\n  slotSize: 16MiB\n  dataSize: 16MiB\nnetwork:\n  hostname: edge-1\nservices:\n  - name: web\n    image: oci-layout:../oci:web\n    ready:\n      tcp: 8080\n",
	})
	if _, err := f.build(t, t.TempDir()); err == nil || !strings.Contains(err.Error(), "make runtime") {
		t.Fatalf("build without the container runtime: %v", err)
	}
	writeFiles(t, f.dir, map[string]string{
		"images/missing.yaml": "name: test\nversion: 1.0.0\nservices:\n  - name: web\n    image: oci-layout:../oci:no-such-service\n",
	})
	missing := *f
	missing.specFile = filepath.Join(f.dir, "images", "missing.yaml")
	if _, err := missing.build(t, t.TempDir()); err == nil || !strings.Contains(err.Error(), `missing.yaml:5: input oci-layout:../oci:no-such-service: no image tagged "no-such-service"`) {
		t.Fatalf("build with a service image that is not there: %v", err)
	}
	writeFiles(t, f.binDir, map[string]string{
		"linux-amd64/containerd": "#!fake", "linux-amd64/containerd-shim-runc-v2": "#!fake", "linux-amd64/runc": "#!fake",
	})
	res, err := f.build(t, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	slot := filepath.Join(t.TempDir(), "slot.img")
	if b, err := exec.Command("dd", "if="+res.Image, "of="+slot, "bs=1M", "skip=65", "count=16", "status=none").CombinedOutput(); err != nil {
		t.Fatalf("dd: %v\n%s", err, b)
	}
	if _, err := exec.LookPath("unsquashfs"); err != nil {
		t.Skip("unsquashfs is not installed (make deps installs it)")
	}
	list, err := exec.Command("unsquashfs", "-lls", slot).CombinedOutput()
	if err != nil {
		t.Fatalf("unsquashfs: %v\n%s", err, list)
	}
	for _, want := range []string{"usr/share/cairn/images/web/index.json", "usr/share/cairn/images/web/blobs/sha256/", "usr/bin/containerd", "usr/bin/runc", "usr/bin/cairn-agent", "etc/cairn/agent.yaml"} {
		if !strings.Contains(string(list), want) {
			t.Errorf("slot lacks %s", want)
		}
	}
	conf, _ := exec.Command("unsquashfs", "-cat", slot, "etc/cairn/agent.yaml").Output()
	if !strings.Contains(string(conf), "hostname: edge-1") || !strings.Contains(string(conf), "name: web") {
		t.Errorf("agent.yaml:\n%s", conf)
	}
}

// TestBuildOCI builds the update artifact (--format oci): a layout
// directory <name>.oci, byte-identical across builds of the same inputs,
// and a second build into the same directory replaces the first whole.
func TestBuildOCI(t *testing.T) {
	f := newFixture(t)
	f.format = "oci"
	out := t.TempDir()
	res, err := f.build(t, out)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(out, "test-test-board.oci"); res.Image != want || res.Bmap != "" {
		t.Fatalf("Image = %s, Bmap = %q; want %s and no block map", res.Image, res.Bmap, want)
	}
	first := dirSums(t, res.Image)
	if len(first) < 6 { // oci-layout, index.json, manifest, config, slot, kernel, initrd
		t.Fatalf("the layout holds only %v", first)
	}
	// Something stale inside the old layout must not survive the next build.
	os.WriteFile(filepath.Join(res.Image, "blobs", "sha256", "stale"), []byte("x"), 0o644)
	again, err := f.build(t, out)
	if err != nil {
		t.Fatalf("a second build into the same directory: %v", err)
	}
	if second := dirSums(t, again.Image); !maps.Equal(first, second) {
		t.Errorf("a rebuild differs from the first build:\n%v\n%v", first, second)
	}
	entries, _ := os.ReadDir(out)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := "test-test-board.inputs.json test-test-board.node.yaml test-test-board.oci"; strings.Join(names, " ") != want {
		t.Errorf("output directory holds %v, want %s", names, want)
	}
	other, err := f.build(t, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(first, dirSums(t, other.Image)) {
		t.Error("two builds of the same inputs into two directories differ")
	}
}

// dirSums maps each file under root to a hash of its content.
func dirSums(t *testing.T, root string) map[string]string {
	t.Helper()
	sums := map[string]string{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		sums[rel] = fmt.Sprintf("%x", sha256.Sum256(b))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return sums
}
