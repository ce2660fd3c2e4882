package flash

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent/boot/datafs"
	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/builder/disk"
	"github.com/cairn-edge/cairn/builder/disk/disktest"
	"github.com/cairn-edge/cairn/builder/fstree"
	"github.com/cairn-edge/cairn/builder/squashfs"
)

// TestFlashReusedCard flashes an image with its block map, by cairn flash
// and by bmaptool copy, onto a card that held an earlier one, for the
// UEFI and the Raspberry Pi layouts: an ext4 at the start of every
// partition (the old node's /var grown to the card's end over
// CAIRN-DATA), an old root's squashfs in slot B. blkid, probing each
// partition's range of the card, then finds only what the image put
// there: FAT on the FAT partitions, slot A's squashfs, and nothing in
// slot B and CAIRN-DATA, which cairn-init takes for blank.
func TestFlashReusedCard(t *testing.T) {
	needRoot(t)
	blkid := needTool(t, "blkid")
	mkfs := needTool(t, "mkfs.ext4")
	sizes := disk.Sizes{ESP: 40 << 20, Slot: 8 << 20, Data: 8 << 20}
	layouts := []struct {
		name string
		plan func(arch, seed string, s disk.Sizes) (disk.Layout, error)
		arch string
	}{
		{"uefi", disk.Plan, "amd64"},
		{"rpi", disk.PlanRPi, "arm64"},
	}
	writers := []struct {
		name  string
		flash func(t *testing.T, img, dev string)
	}{
		{"cairn flash", func(t *testing.T, img, dev string) {
			im, err := OpenImage(img, ImageOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if im.Map == nil {
				t.Fatal("the image has no block map")
			}
			d, err := CheckDevice(dev, im.Size)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Flash(context.Background(), im, d, Options{Log: quiet()}); err != nil {
				t.Fatal(err)
			}
		}},
		{"bmaptool copy", func(t *testing.T, img, dev string) {
			bmaptool := needTool(t, "bmaptool")
			if out, err := exec.Command(bmaptool, "copy", "--bmap", strings.TrimSuffix(img, ".img")+".bmap", img, dev).CombinedOutput(); err != nil {
				t.Fatalf("bmaptool copy: %v\n%s", err, out)
			}
		}},
	}
	for _, lt := range layouts {
		l, err := lt.plan(lt.arch, "reuse-"+lt.name, sizes)
		if err != nil {
			t.Fatal(err)
		}
		img := reuseImage(t, l)
		for _, w := range writers {
			t.Run(lt.name+"/"+w.name, func(t *testing.T) {
				dev := oldCard(t, l, mkfs, blkid)
				w.flash(t, img, dev)
				for _, p := range l.Partitions {
					want := ""
					switch {
					case p.FAT:
						want = "vfat"
					case p.Label == disk.LabelA:
						want = "squashfs"
					}
					if got := probeFS(t, blkid, dev, p); got != want {
						t.Errorf("after flashing, blkid finds %q in %s, want %q", got, p.Label, want)
					}
				}
				data := l.Get(disk.LabelData)
				head := make([]byte, datafs.ProbeSize)
				f, err := os.Open(dev)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if _, err := f.ReadAt(head, data.Start); err != nil {
					t.Fatal(err)
				}
				if k := datafs.Classify(head); k != datafs.Blank {
					t.Errorf("after flashing, %s is %s to cairn-init, want %s: it would not make its own ext4", data.Label, k, datafs.Blank)
				}
			})
		}
	}
}

// oldCard is a loop device 16 MiB larger than layout l that held an
// earlier image: an ext4 at the start of each partition of l, CAIRN-DATA's
// to the device's end, and a squashfs in slot B. blkid, the premise,
// finds them.
func oldCard(t *testing.T, l disk.Layout, mkfs, blkid string) string {
	t.Helper()
	size := l.Size + 16<<20
	dev := loopDevice(t, size)
	b := l.Get(disk.LabelB)
	for _, p := range l.Partitions {
		if p.Label == b.Label {
			continue
		}
		end := p.Start + p.Size
		if p.Label == disk.LabelData {
			end = size
		}
		if out, err := exec.Command(mkfs, "-q", "-F", "-E", fmt.Sprintf("offset=%d,lazy_itable_init=0,lazy_journal_init=0", p.Start), dev, fmt.Sprintf("%dk", (end-p.Start)>>10)).CombinedOutput(); err != nil {
			t.Fatalf("mkfs.ext4 over %s: %v\n%s", p.Label, err, out)
		}
	}
	writeAt(t, dev, squashfsImage(t, "old root"), b.Start)
	for _, p := range l.Partitions {
		want := "ext4"
		if p.Label == b.Label {
			want = "squashfs"
		}
		if got := probeFS(t, blkid, dev, p); got != want {
			t.Fatalf("the old card's %s holds %q, want %q", p.Label, got, want)
		}
	}
	return dev
}

// reuseImage writes a disk of layout l, with empty FATs and a squashfs in
// slot A, and its block map beside it, and returns the image's path.
func reuseImage(t *testing.T, l disk.Layout) string {
	t.Helper()
	img := disktest.Write(t, l, disk.Contents{Slots: map[contract.Slot]string{contract.SlotA: squashfsImage(t, "new root")}, Epoch: disktest.Epoch})
	disktest.WriteBmap(t, img)
	return img
}

// squashfsImage writes a squashfs holding a release file of what and
// returns its path.
func squashfsImage(t *testing.T, what string) string {
	t.Helper()
	tree := fstree.New()
	if err := tree.File("etc/cairn/release", 0o644, []byte(what+"\n")); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "slot.squashfs")
	if _, err := squashfs.Write(tree, out, disktest.Epoch); err != nil {
		t.Fatal(err)
	}
	return out
}

// writeAt copies the file src onto dev at off.
func writeAt(t *testing.T, dev, src string, off int64) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// probeFS is the file system type blkid's low-level probe finds in
// partition p's range of dev, "" for none; an ambivalent result (two
// signatures) fails the test.
func probeFS(t *testing.T, blkid, dev string, p disk.Partition) string {
	t.Helper()
	out, err := exec.Command(blkid, "-p", "-O", fmt.Sprint(p.Start), "-S", fmt.Sprint(p.Size), "-o", "export", dev).CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 2 {
		return "" // nothing found
	}
	if err != nil {
		t.Fatalf("blkid -p on %s's range: %v\n%s", p.Label, err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "TYPE="); ok {
			return v
		}
	}
	t.Fatalf("blkid -p on %s's range found no TYPE:\n%s", p.Label, out)
	return ""
}
