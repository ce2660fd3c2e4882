// Package memtrim hands back to the kernel the pages of the program's own
// file that only starting up needed.
//
// A Go program as large as cairn-kube maps tens of MiB of its code and
// tables while it starts (package initialisers, flag and config parsing,
// building the API's schemas) and never touches most of them again. They are
// clean file pages, so the kernel could drop them under memory pressure, but
// until then they count as the process's memory and crowd the page cache.
// ReleaseStartupPages asks the kernel to reclaim them now (MADV_PAGEOUT);
// what the program still uses faults back in from the page cache or the
// file.
package memtrim

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ReleaseStartupPages reclaims the resident pages of the read-only mappings
// of the running executable and reports how many bytes it asked about.
// Kernels before 5.4 have no MADV_PAGEOUT: the error says so, and nothing
// changes.
func ReleaseStartupPages() (int64, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, err
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	ranges, err := readOnlyMappings(bufio.NewScanner(f), exe)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, r := range ranges {
		// The raw call: the range is not Go memory, so no []byte for it.
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, r.start, r.end-r.start, unix.MADV_PAGEOUT); errno != 0 {
			return total, fmt.Errorf("madvise(MADV_PAGEOUT) on %s: %w (needs Linux 5.4 or later)", exe, errno)
		}
		total += int64(r.end - r.start)
	}
	return total, nil
}

// mapping is an address range [start, end).
type mapping struct{ start, end uintptr }

// readOnlyMappings lists the non-writable mappings of path in a
// /proc/PID/maps listing: the code and the read-only data. Writable ones
// (initialised data) are left alone.
func readOnlyMappings(sc *bufio.Scanner, path string) ([]mapping, error) {
	var out []mapping
	for sc.Scan() {
		// 00400000-04067000 r-xp 00000000 fe:00 11207480   /usr/bin/cairn-kube
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || strings.Join(fields[5:], " ") != path || len(fields[1]) < 2 || fields[1][1] != '-' {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			return nil, fmt.Errorf("unexpected line in /proc/self/maps: %q", sc.Text())
		}
		out = append(out, mapping{uintptr(start), uintptr(end)})
	}
	return out, sc.Err()
}
