package main

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strings"
	"syscall"
)

// printMemory prints, as "cairn-test: mem <source> <line>", what the kernel
// holds with no program running but this one: the floor under every image's
// memory figures. meminfo and the reserve's knobs say what is held; the boot
// log's "Memory:" line and reservations (crashkernel, CMA, swiotlb, per-CPU
// areas) say where MemTotal fell short of the guest's RAM.
func printMemory() {
	if err := syscall.Mount("proc", "/proc", "proc", 0, ""); err != nil {
		fmt.Println("cairn-test: mount /proc:", err)
		return
	}
	if err := syscall.Mount("sysfs", "/sys", "sysfs", 0, ""); err != nil {
		fmt.Println("cairn-test: mount /sys:", err)
	}
	for _, f := range []string{
		"/proc/meminfo",
		"/proc/sys/vm/min_free_kbytes",
		"/proc/sys/vm/watermark_scale_factor",
		"/proc/sys/vm/lowmem_reserve_ratio",
		"/sys/kernel/mm/transparent_hugepage/enabled",
		"/proc/buddyinfo",
		"/proc/cmdline",
	} {
		b, err := os.ReadFile(f)
		if err != nil {
			fmt.Printf("cairn-test: mem %s error %v\n", f, err)
			continue
		}
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			fmt.Printf("cairn-test: mem %s %s\n", f, strings.Join(strings.Fields(l), " "))
		}
	}
	printSlabs(12)
	buf := make([]byte, 1<<20)
	n, err := syscall.Klogctl(3, buf) // SYSLOG_ACTION_READ_ALL
	if err != nil {
		fmt.Println("cairn-test: mem klog error", err)
		return
	}
	for _, l := range bytes.Split(buf[:n], []byte("\n")) {
		s := string(l)
		for _, w := range []string{"Memory:", "reserved", "crashkernel", "cma", "CMA", "swiotlb", "percpu", "Freeing", "min_free_kbytes"} {
			if strings.Contains(s, w) {
				fmt.Printf("cairn-test: mem klog %s\n", s)
				break
			}
		}
	}
	fmt.Println("cairn-test: mem done")
}

// printSlabs prints the n largest slab caches (objects × object size), as
// "cairn-test: mem slab <name> <KiB>": who the kernel's own allocations
// are for.
func printSlabs(n int) {
	b, err := os.ReadFile("/proc/slabinfo")
	if err != nil {
		fmt.Println("cairn-test: mem slab error", err)
		return
	}
	type cache struct {
		name string
		kib  int
	}
	var caches []cache
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 4 || strings.HasPrefix(l, "#") || f[0] == "slabinfo" {
			continue
		}
		var objs, size int
		fmt.Sscan(f[2], &objs)
		fmt.Sscan(f[3], &size)
		caches = append(caches, cache{f[0], objs * size / 1024})
	}
	sort.Slice(caches, func(i, j int) bool { return caches[i].kib > caches[j].kib })
	for i := 0; i < n && i < len(caches); i++ {
		fmt.Printf("cairn-test: mem slab %s %d\n", caches[i].name, caches[i].kib)
	}
}
