package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-edge/cairn/qemu-tests/qemu"
)

// probe is what the harness's meminfo probe (qemu-tests/qemu/testdata/init,
// cairntest=meminfo) printed: the kernel with nothing but a static init.
type probe struct {
	meminfo map[string]uint64 // kB
	minFree string            // vm.min_free_kbytes
	thp     string            // transparent_hugepage/enabled
	klog    []string          // the boot log's memory lines
	slabs   []string          // the largest slab caches, "name KiB"
}

// unavailable is MemTotal − MemAvailable in MiB.
func (p probe) unavailable() float64 {
	return float64(p.meminfo["MemTotal"]-p.meminfo["MemAvailable"]) / 1024
}

// kernelFloor boots the meminfo probe on arch through UEFI (so the
// firmware's own reservations are those of a real image) with memMiB of
// RAM and extra on the kernel command line.
func kernelFloor(kernel, tmp string, arch qemu.Arch, memMiB int, extra string) (probe, error) {
	initrd, err := qemu.GuestInitramfs(tmp, arch)
	if err != nil {
		return probe{}, err
	}
	cmdline := strings.TrimSpace("console=" + arch.SerialConsole() + " panic=-1 cairntest=meminfo " + extra)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	vm, err := qemu.Start(ctx, qemu.WithArch(arch), qemu.WithUEFI(), qemu.WithMemory(memMiB), qemu.WithKernel(kernel, initrd, cmdline))
	if err != nil {
		return probe{}, err
	}
	defer vm.Kill()
	if _, err := vm.Expect(5*time.Minute, `cairn-test: mem done`); err != nil {
		return probe{}, err
	}
	return parseProbe(vm.Console()), nil
}

// parseProbe reads the probe's "cairn-test: mem <source> <line>" lines.
func parseProbe(console string) probe {
	p := probe{meminfo: map[string]uint64{}}
	for _, l := range strings.Split(console, "\n") {
		_, rest, ok := strings.Cut(strings.TrimRight(l, "\r"), "cairn-test: mem ")
		if !ok {
			continue
		}
		src, val, _ := strings.Cut(rest, " ")
		switch src {
		case "/proc/meminfo":
			k, v, _ := strings.Cut(val, ": ")
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseUint(f[0], 10, 64)
				p.meminfo[strings.TrimSuffix(k, ":")] = n
			}
		case "/proc/sys/vm/min_free_kbytes":
			p.minFree = val
		case "/sys/kernel/mm/transparent_hugepage/enabled":
			p.thp = val
		case "klog":
			p.klog = append(p.klog, val)
		case "slab":
			p.slabs = append(p.slabs, val+" KiB")
		}
	}
	return p
}

// benchFloor reports the kernel-only floor of arch in a 1 GiB guest for
// the choices about transparent huge pages: madvise with the reserve
// khugepaged raises, never, and madvise with the reserve set back to the
// kernel's own size (what never leaves) through the command line's
// sysctl.vm.min_free_kbytes, applied after khugepaged started. The first
// row also has the boot log's account of the RAM MemTotal does not show.
func benchFloor(kernels string, tmp, board string, arch qemu.Arch, more ...string) error {
	kernel := filepath.Join(kernels, "linux-"+string(arch), "boot", "vmlinuz")
	if _, err := os.Stat(kernel); err != nil {
		return fmt.Errorf("kernel-only floor: %w (make inputs unpacks Debian's kernels there; or pass -kernels)", err)
	}
	variants := append([]string{"transparent_hugepage=madvise", "transparent_hugepage=never"}, more...)
	for i := 0; i < len(variants); i++ {
		extra := variants[i]
		p, err := kernelFloor(kernel, tmp, arch, 1024, extra)
		if err != nil {
			return fmt.Errorf("kernel-only floor of %s with %q: %w", board, extra, err)
		}
		m := p.meminfo
		row(fmt.Sprintf("%s: kernel alone, 1024 MiB guest, `%s`: MemTotal − MemAvailable (MemTotal / MemFree / MemAvailable; min_free_kbytes; THP)", board, extra),
			"**%.1f MiB** (%d / %d / %d kB; %s kB; %s)", p.unavailable(), m["MemTotal"], m["MemFree"], m["MemAvailable"], p.minFree, p.thp)
		row(board+": kernel alone, "+extra+": kernel uses (Slab / SUnreclaim / PageTables / KernelStack / Percpu / Shmem+initramfs)",
			"%d / %d / %d / %d / %d / %d kB", m["Slab"], m["SUnreclaim"], m["PageTables"], m["KernelStack"], m["Percpu"], m["Shmem"])
		if i == 1 {
			variants = append(variants, "transparent_hugepage=madvise sysctl.vm.min_free_kbytes="+p.minFree)
			row(board+": kernel alone, largest slab caches", "%s", strings.Join(p.slabs, ", "))
		}
		if i == 0 {
			row(board+": kernel holds back, 1024 MiB − MemTotal", "%.1f MiB; boot log: %s", 1024-float64(m["MemTotal"])/1024, strings.Join(p.klog, " · "))
		}
	}
	return nil
}
