package flash

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/builder/bmap"
	"github.com/cairn-edge/cairn/builder/compress"
	"github.com/cairn-edge/cairn/builder/disk"
	"github.com/cairn-edge/cairn/builder/disk/disktest"
	"golang.org/x/sys/unix"
)

// pattern is what a test device holds before it is flashed, so a test
// sees which bytes were written.
var pattern = []byte("old card data.\n")

// needRoot skips a test that needs root and loop devices, unless under
// CI, where their absence is a failure.
func needRoot(t testing.TB) {
	t.Helper()
	_, err := exec.LookPath("losetup")
	if os.Geteuid() != 0 || err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("this test needs root and losetup (loop devices)")
		}
		t.Skip("needs root and losetup (loop devices)")
	}
}

// needTool returns the path of a tool, skipping without it unless under CI.
func needTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed (builder/scripts/deps.sh installs it)", name)
		}
		t.Skipf("%s is not installed", name)
	}
	return p
}

// loopDevice attaches a loop device of size bytes filled with pattern and
// returns its path; it is detached when the test ends. flags go to
// losetup (-P: scan partitions).
func loopDevice(t testing.TB, size int64, flags ...string) string {
	t.Helper()
	needRoot(t)
	backing := filepath.Join(t.TempDir(), "card")
	fill := bytes.Repeat(pattern, int(size)/len(pattern)+1)[:size]
	if err := os.WriteFile(backing, fill, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", append([]string{"-f", "--show", backing}, flags...)...).Output()
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v\n%s", dev, err, out)
		}
	})
	return dev
}

// readDevice reads all of a device (or file).
func readDevice(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testImage is a Cairn disk (GPT, ESP, slots) with some data in slot A,
// its block map beside it as cairn build names it, and its compressed
// copies. It returns the raw image's path.
func testImage(t testing.TB) string {
	t.Helper()
	src := disktest.Image(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "edge.img")
	if err := os.Rename(src, img); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Slot A starts after the 40 MiB ESP: data there, in two runs.
	f.WriteAt(bytes.Repeat([]byte("slot data "), 300000), 42<<20)
	f.WriteAt([]byte("more"), 50<<20+5)
	disktest.WriteBmap(t, img)
	for _, c := range []compress.Format{compress.Zstd, compress.Xz} {
		if err := compress.File(context.Background(), img, img+c.Ext(), c); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestFlash flashes raw, .zst and .xz images, with and without their
// block map, onto loop devices: every mapped range is the image's; with
// a block map nothing else is written, without one all of the image is,
// and nothing beyond the image.
func TestFlash(t *testing.T) {
	img := testImage(t)
	raw := readDevice(t, img)
	m, err := bmap.Parse(readDevice(t, strings.TrimSuffix(img, ".img")+".bmap"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Ranges) < 3 || m.Mapped()*bmap.BlockSize > int64(len(raw))/2 {
		t.Fatalf("the test image maps %d blocks in %d ranges: not a sparse image", m.Mapped(), len(m.Ranges))
	}
	for _, ext := range []string{"", ".zst", ".xz"} {
		for _, useBmap := range []bool{true, false} {
			name := "raw" + ext
			if !useBmap {
				name += "-no-bmap"
			}
			t.Run(name, func(t *testing.T) {
				dev := loopDevice(t, int64(len(raw))+16<<20)
				before := readDevice(t, dev)
				im, err := OpenImage(img+ext, ImageOptions{NoBmap: !useBmap})
				if err != nil {
					t.Fatal(err)
				}
				if im.Size != int64(len(raw)) || (im.Map != nil) != useBmap {
					t.Fatalf("OpenImage: size %d, map %v; want %d, %v", im.Size, im.Map != nil, len(raw), useBmap)
				}
				d, err := CheckDevice(dev, im.Size)
				if err != nil {
					t.Fatal(err)
				}
				res, err := Flash(context.Background(), im, d, Options{Log: quiet()})
				if err != nil {
					t.Fatal(err)
				}
				got := readDevice(t, dev)
				want := bytes.Clone(before)
				if useBmap {
					for _, r := range m.Ranges {
						off, n := m.Extent(r)
						copy(want[off:off+n], raw[off:off+n])
					}
					if res.Written != m.Mapped()*bmap.BlockSize {
						t.Errorf("Written = %d, want the %d mapped bytes", res.Written, m.Mapped()*bmap.BlockSize)
					}
				} else {
					copy(want, raw)
				}
				if i := firstDiff(got, want); i >= 0 {
					t.Fatalf("the device differs from what it should hold at byte %d: got %q, want %q", i, got[i:min(i+16, len(got))], want[i:min(i+16, len(want))])
				}
			})
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// TestFlashNodeFile writes the per-node file onto the flashed ESP.
func TestFlashNodeFile(t *testing.T) {
	img := testImage(t)
	node, err := NodeFile(Node{Hostname: "edge-7", Interface: "eth0", Addresses: []string{"192.168.1.7/24"}, Gateway: "192.168.1.1"})
	if err != nil {
		t.Fatal(err)
	}
	dev := loopDevice(t, 80<<20)
	im, err := OpenImage(img+".zst", ImageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := CheckDevice(dev, im.Size)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Flash(context.Background(), im, d, Options{Log: quiet(), NodeFile: node}); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	esp, err := disk.OpenESP(f)
	if err != nil {
		t.Fatal(err)
	}
	got, err := esp.ReadFile(contract.NodeFileName)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, node) {
		t.Errorf("the ESP's %s is\n%s\nwant\n%s", contract.NodeFileName, got, node)
	}
	// mtools, which reads FAT independently, sees it too.
	if _, err := exec.LookPath("mtype"); err == nil {
		esp := filepath.Join(t.TempDir(), "esp.img")
		if out, err := exec.Command("dd", "if="+dev, "of="+esp, "bs=1M", "skip=1", "count=40", "status=none").CombinedOutput(); err != nil {
			t.Fatalf("dd: %v\n%s", err, out)
		}
		out, err := exec.Command("mtype", "-i", esp, "::/"+contract.NodeFileName).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "hostname: edge-7") {
			t.Errorf("mtype %s: %v\n%s", contract.NodeFileName, err, out)
		}
	}
}

// TestRefuse: what is not a card to write is refused, naming why, and
// nothing is written.
func TestRefuse(t *testing.T) {
	img := testImage(t)
	im, err := OpenImage(img, ImageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("regular file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "card.img")
		os.WriteFile(file, bytes.Repeat(pattern, 1000), 0o644)
		_, err := CheckDevice(file, im.Size)
		wantErr(t, err, "is a regular file, not a block device")
		if got := readDevice(t, file); !bytes.Equal(got, bytes.Repeat(pattern, 1000)) {
			t.Error("the file was written")
		}
	})
	t.Run("directory", func(t *testing.T) {
		_, err := CheckDevice(t.TempDir(), im.Size)
		wantErr(t, err, "is a directory, not a block device")
	})
	t.Run("missing", func(t *testing.T) {
		_, err := CheckDevice("/dev/does-not-exist", im.Size)
		wantErr(t, err, "no such file")
	})
	t.Run("too small", func(t *testing.T) {
		dev := loopDevice(t, 32<<20)
		before := readDevice(t, dev)
		_, err := CheckDevice(dev, im.Size)
		wantErr(t, err, "is smaller than the image ("+humanBytes(im.Size)+")")
		if !bytes.Equal(readDevice(t, dev), before) {
			t.Error("the device was written")
		}
	})
	t.Run("mounted", func(t *testing.T) {
		needTool(t, "mkfs.ext4")
		dev := loopDevice(t, 80<<20)
		// No lazy initialisation: the kernel would write it in the background.
		if out, err := exec.Command("mkfs.ext4", "-q", "-E", "lazy_itable_init=0,lazy_journal_init=0", dev).CombinedOutput(); err != nil {
			t.Fatalf("mkfs.ext4: %v\n%s", err, out)
		}
		mnt := t.TempDir()
		if out, err := exec.Command("mount", "-o", "ro", dev, mnt).CombinedOutput(); err != nil {
			t.Fatalf("mount: %v\n%s", err, out)
		}
		t.Cleanup(func() { exec.Command("umount", mnt).Run() })
		before := readDevice(t, dev)
		_, err := CheckDevice(dev, im.Size)
		wantErr(t, err, "is mounted on "+mnt)
		// Flash itself refuses too, by opening the device exclusively,
		// should the device be mounted after the check.
		d := &Device{Path: dev, Name: filepath.Base(dev), Size: 80 << 20}
		_, err = Flash(context.Background(), im, d, Options{Log: quiet()})
		wantErr(t, err, "nothing was written")
		if !bytes.Equal(readDevice(t, dev), before) {
			t.Error("the device was written")
		}
	})
	t.Run("mounted partition", func(t *testing.T) {
		dev := loopDevice(t, 80<<20, "-P")
		if out, err := exec.Command("dd", "if="+img, "of="+dev, "bs=4M", "conv=fsync", "status=none").CombinedOutput(); err != nil {
			t.Fatalf("dd: %v\n%s", err, out)
		}
		// The kernel reads the new table; partx adds what it did not
		// (in a container the reread may leave the partitions out).
		exec.Command("blockdev", "--rereadpt", dev).Run()
		exec.Command("partx", "-a", dev).Run()
		esp := partitionNode(t, dev, 1)
		_, err := CheckDevice(esp, 1)
		wantErr(t, err, "is a partition of "+filepath.Base(dev)+": flash the whole disk")
		// Slot A becomes an ext4 (this kernel may mount no vfat) to mount.
		slot := partitionNode(t, dev, 2)
		if out, err := exec.Command("mkfs.ext4", "-q", "-E", "lazy_itable_init=0,lazy_journal_init=0", slot).CombinedOutput(); err != nil {
			t.Fatalf("mkfs.ext4: %v\n%s", err, out)
		}
		mnt := t.TempDir()
		if out, err := exec.Command("mount", "-o", "ro", slot, mnt).CombinedOutput(); err != nil {
			t.Fatalf("mount: %v\n%s", err, out)
		}
		t.Cleanup(func() { exec.Command("umount", mnt).Run() })
		before := readDevice(t, dev)
		_, err = CheckDevice(dev, im.Size)
		wantErr(t, err, filepath.Base(slot)+" is mounted on "+mnt)
		if !bytes.Equal(readDevice(t, dev), before) {
			t.Error("the device was written")
		}
	})
}

func wantErr(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error = %v, want one containing %q", err, want)
	}
}

// partitionNode returns a device node of partition n of the loop device
// dev: /dev/loopNpM when udev made it, else one made from sysfs.
func partitionNode(t testing.TB, dev string, n int) string {
	t.Helper()
	name := fmt.Sprintf("%sp%d", filepath.Base(dev), n)
	if _, err := os.Stat("/dev/" + name); err == nil {
		return "/dev/" + name
	}
	d, err := readDev(filepath.Join("/sys/block", filepath.Base(dev), name, "dev"))
	if err != nil {
		t.Fatalf("the kernel shows no partition %d of %s: %v", n, dev, err)
	}
	node := filepath.Join(t.TempDir(), name)
	if err := unix.Mknod(node, unix.S_IFBLK|0o600, int(d)); err != nil {
		t.Fatal(err)
	}
	return node
}

// TestMismatch: an image that does not match its block map, and a device
// that reads back other bytes than were written, are errors.
func TestMismatch(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "x.img")
	os.WriteFile(img, bytes.Repeat([]byte("image "), 100000), 0o644)
	other := filepath.Join(dir, "other.img")
	os.WriteFile(other, bytes.Repeat([]byte("other "), 100000), 0o644)
	f, _ := os.Open(other)
	m, err := bmap.Scan(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "x.bmap"), m.Encode(), 0o644)
	im, err := OpenImage(img, ImageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.OpenFile(filepath.Join(dir, "card"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	err = write(context.Background(), im, out, im.plan(), newProgress(quiet(), "writing", 1, time.Hour))
	if err == nil || !strings.Contains(err.Error(), "do not match the block map") {
		t.Errorf("write of an image with another's block map = %v", err)
	}

	extents := []extent{{off: 0, n: 4096, sum: strings.Repeat("0", 64)}}
	err = verify(context.Background(), out, extents, newProgress(quiet(), "verifying", 1, time.Hour))
	if err == nil || !strings.Contains(err.Error(), "read back differ from the image") {
		t.Errorf("verify of other bytes = %v", err)
	}

	_, err = OpenImage(img, ImageOptions{Bmap: filepath.Join(dir, "missing.bmap")})
	wantErr(t, err, "no such file")
	os.WriteFile(filepath.Join(dir, "bad.bmap"), []byte("<bmap/>"), 0o644)
	_, err = OpenImage(img, ImageOptions{Bmap: filepath.Join(dir, "bad.bmap")})
	wantErr(t, err, "or pass --no-bmap")
	os.Truncate(img, 4096)
	_, err = OpenImage(img, ImageOptions{})
	wantErr(t, err, "they are not of the same build")
}
