// Command cairn-bench measures the figures README.md reports and prints
// them as a Markdown table: build time (cold and warm cache), image, slot
// and initramfs sizes, and boot time under QEMU to `cairn: init ok`.
// Run it through `make bench`, which prepares the inputs and binaries.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cairn-edge/cairn/builder/build"
	"github.com/cairn-edge/cairn/builder/source"
	"github.com/cairn-edge/cairn/builder/spec"
	"github.com/cairn-edge/cairn/qemu-tests/qemu"
)

func main() {
	specFile := flag.String("f", "images/minimal.yaml", "image spec")
	binDir := flag.String("bin-dir", "out/bin", "binaries (make binaries)")
	runs := flag.Int("n", 3, "runs per timing")
	flag.Parse()
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := run(*specFile, *binDir, *runs); err != nil {
		fmt.Fprintf(os.Stderr, "cairn-bench: %v\n", err)
		os.Exit(1)
	}
}

func run(specFile, binDir string, runs int) error {
	tmp, err := os.MkdirTemp("", "cairn-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	fmt.Printf("| figure | value |\n| --- | --- |\n")
	row := func(k, v string, args ...any) { fmt.Printf("| %s | %s |\n", k, fmt.Sprintf(v, args...)) }

	for _, board := range []struct {
		name string
		arch qemu.Arch
	}{{"qemu-x86_64", qemu.AMD64}, {"qemu-aarch64", qemu.ARM64}} {
		s, err := spec.LoadSpec(specFile)
		if err != nil {
			return err
		}
		b, err := spec.LoadBoard("boards", board.name)
		if err != nil {
			return err
		}
		img := spec.Merge(s, b)
		var cold, warm []time.Duration
		var res *build.Result
		for i := range runs {
			cache := filepath.Join(tmp, fmt.Sprintf("cache-%s-%d", board.name, i))
			for _, list := range []*[]time.Duration{&cold, &warm} { // the same cache: first cold, then warm
				c, err := source.OpenCache(cache)
				if err != nil {
					return err
				}
				start := time.Now()
				if res, err = build.Build(context.Background(), img, build.Options{OutDir: filepath.Join(tmp, "out"), Cache: c, BinDir: binDir, PKIDir: filepath.Join(tmp, "pki")}); err != nil {
					return err
				}
				*list = append(*list, time.Since(start))
			}
		}
		row(board.name+": build, cold cache (median of "+fmt.Sprint(runs)+")", "%s", median(cold))
		row(board.name+": build, warm cache (median of "+fmt.Sprint(runs)+")", "%s", median(warm))
		zst, err := zstdSize(res.Image)
		if err != nil {
			return err
		}
		row(board.name+": image raw / data blocks / zstd -19", "%d MiB / %.1f MiB / %.1f MiB", res.ImageSize>>20, mib(res.MappedBytes), mib(zst))
		row(board.name+": slot squashfs / initramfs", "%.1f MiB / %.1f MiB", mib(res.SlotSize), mib(res.InitramfsSize))

		var boots []time.Duration
		accel := ""
		for range runs {
			disk := filepath.Join(tmp, "boot.img")
			if err := qemu.CopySparse(disk, res.Image); err != nil {
				return err
			}
			os.Truncate(disk, 2<<30)
			vm, err := qemu.Start(context.Background(), qemu.WithArch(board.arch), qemu.WithDisk(disk))
			if err != nil {
				return err
			}
			m, err := vm.Expect(5*time.Minute, `cairn: init ok`)
			accel = vm.Accel()
			vm.Kill()
			os.Remove(disk)
			if err != nil {
				return err
			}
			boots = append(boots, m.At)
		}
		row(board.name+": QEMU start → `cairn: init ok` ("+accel+", first boot, median of "+fmt.Sprint(runs)+")", "%s (min %s, max %s)", median(boots), slices.Min(boots).Round(10*time.Millisecond), slices.Max(boots).Round(10*time.Millisecond))
	}
	return nil
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2].Round(10 * time.Millisecond)
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func zstdSize(img string) (int64, error) {
	out, err := exec.Command("sh", "-c", "zstd -19 -T0 -c "+img+" | wc -c").Output()
	if err != nil {
		return 0, fmt.Errorf("zstd: %w (install zstd)", err)
	}
	var n int64
	_, err = fmt.Sscan(strings.TrimSpace(string(out)), &n)
	return n, err
}
