package flash

import (
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/builder/bmap"
	"github.com/cairn-edge/cairn/builder/compress"
)

// benchImage is a 1 GiB sparse image with about 200 MiB mapped, in runs
// as a real one has them (boot partition, a slot of compressed data, a
// little at the end), with its block map and compressed copies.
func benchImage(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	img := filepath.Join(dir, "bench.img")
	f, err := os.Create(img)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(1 << 30); err != nil {
		b.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(7, 7))
	run := func(off, n int64, random bool) {
		buf := make([]byte, 1<<20)
		for done := int64(0); done < n; done += int64(len(buf)) {
			for i := range buf {
				if random {
					buf[i] = byte(rnd.Uint32())
				} else {
					buf[i] = "kernel initrd loader entries\n"[i%29]
				}
			}
			if _, err := f.WriteAt(buf, off+done); err != nil {
				b.Fatal(err)
			}
		}
	}
	run(1<<20, 40<<20, false)  // ESP: kernel, initramfs (text-like)
	run(65<<20, 160<<20, true) // slot A: squashfs (already compressed)
	run(1<<30-(1<<20), 1<<20, false)
	m, err := bmap.Scan(f)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bench.bmap"), m.Encode(), 0o644); err != nil {
		b.Fatal(err)
	}
	for _, c := range []compress.Format{compress.Zstd, compress.Xz} {
		start := time.Now()
		if err := compress.File(context.Background(), img, img+c.Ext(), c); err != nil {
			b.Fatal(err)
		}
		st, _ := os.Stat(img + c.Ext())
		b.Logf("compress %s: %s in %s", c, humanBytes(st.Size()), time.Since(start).Round(10*time.Millisecond))
	}
	return img
}

// BenchmarkFlash compares cairn flash with dd (conv=fsync, bs=4M) and
// bmaptool copy onto the same loop device (direct I/O to its backing
// file where the kernel allows, so the page cache does not flatter it).
// MB/s is of the image's 1 GiB: what a user waits for per image.
//
//	go test -run '^$' -bench Flash -benchtime 3x ./builder/flash
func BenchmarkFlash(b *testing.B) {
	needRoot(b)
	img := benchImage(b)
	dev := loopDevice(b, 1<<30+64<<20)
	exec.Command("losetup", "--direct-io=on", dev).Run()
	b.Logf("mapped %s of 1 GiB", mappedOf(b, img))
	cairn := func(path string) func(b *testing.B) {
		return func(b *testing.B) {
			var write, verify time.Duration
			for b.Loop() {
				im, err := OpenImage(path, ImageOptions{})
				if err != nil {
					b.Fatal(err)
				}
				d, err := CheckDevice(dev, im.Size)
				if err != nil {
					b.Fatal(err)
				}
				res, err := Flash(context.Background(), im, d, Options{Log: quiet()})
				if err != nil {
					b.Fatal(err)
				}
				write += res.Took
				verify += res.Verify
			}
			b.ReportMetric(write.Seconds()/float64(b.N), "s/write")
			b.ReportMetric(verify.Seconds()/float64(b.N), "s/verify")
		}
	}
	tool := func(name string, args ...string) func(b *testing.B) {
		return func(b *testing.B) {
			needTool(b, name)
			for b.Loop() {
				if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
					b.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
				}
			}
		}
	}
	for _, bm := range []struct {
		name string
		f    func(*testing.B)
	}{
		{"cairn-flash-raw", cairn(img)},
		{"cairn-flash-zst", cairn(img + ".zst")},
		{"cairn-flash-xz", cairn(img + ".xz")},
		{"bmaptool-copy-raw", tool("bmaptool", "copy", "--bmap", strings.TrimSuffix(img, ".img")+".bmap", img, dev)},
		{"bmaptool-copy-zst", tool("bmaptool", "copy", "--bmap", strings.TrimSuffix(img, ".img")+".bmap", img+".zst", dev)},
		{"bmaptool-copy-xz", tool("bmaptool", "copy", "--bmap", strings.TrimSuffix(img, ".img")+".bmap", img+".xz", dev)},
		{"dd-raw", tool("dd", "if="+img, "of="+dev, "bs=4M", "conv=fsync", "status=none")},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.SetBytes(1 << 30)
			start := time.Now()
			bm.f(b)
			b.ReportMetric(time.Since(start).Seconds()/float64(b.N), "s/flash")
		})
	}
}

func mappedOf(b *testing.B, img string) string {
	data, err := os.ReadFile(strings.TrimSuffix(img, ".img") + ".bmap")
	if err != nil {
		b.Fatal(err)
	}
	m, err := bmap.Parse(data)
	if err != nil {
		b.Fatal(err)
	}
	return humanBytes(m.Mapped() * m.BlockSize)
}
