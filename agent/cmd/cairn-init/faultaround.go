package main

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/cairn-edge/cairn/agent/boot/cmdline"
)

// Fault-around: when a process touches a page of a mapped file that is in
// the page cache, the kernel maps the neighbouring cached pages too, 64 KiB
// by default. Go binaries are large and their code is spread thin, so after
// a few minutes nearly every page of the programs' text and tables is
// mapped, whether used or not (cairn-kube: about 100 of its 128 MiB). With
// one page at a time, a process maps only what it touches: less resident
// memory per process, at the price of a few more minor faults while it
// warms up. The pages stay in the page cache either way (the kernel reclaims
// unmapped cache first when memory runs short).
const (
	// faultAroundParam on the kernel command line sets the size in bytes
	// (a power of two; 65536 is the kernel's default).
	faultAroundParam = "cairn.fault_around_bytes"
	// defaultFaultAround maps one page per fault.
	defaultFaultAround = 4096
	debugfs            = "/sys/kernel/debug"
	faultAroundFile    = debugfs + "/fault_around_bytes"
)

// tuneFaultAround sets the kernel's fault-around size from the command line
// (default one page). The knob lives in debugfs, mounted for the moment.
func tuneFaultAround(cl cmdline.Cmdline) error {
	size, err := faultAroundBytes(cl)
	if err != nil {
		return err
	}
	if err := unix.Mount("debugfs", debugfs, "debugfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil && err != unix.EBUSY {
		return fmt.Errorf("mounting debugfs for %s: %w", faultAroundFile, err)
	}
	defer unix.Unmount(debugfs, 0)
	if err := os.WriteFile(faultAroundFile, []byte(strconv.Itoa(size)), 0); err != nil {
		return fmt.Errorf("setting fault-around to %d bytes: %w", size, err)
	}
	log.Info("fault-around set", "bytes", size)
	return nil
}

// faultAroundBytes is the fault-around size the command line asks for.
func faultAroundBytes(cl cmdline.Cmdline) (int, error) {
	v, ok := cl.Get(faultAroundParam)
	if !ok {
		return defaultFaultAround, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 4096 || n&(n-1) != 0 {
		return 0, fmt.Errorf("%s=%q is not a power of two of at least 4096 (the kernel default is 65536)", faultAroundParam, v)
	}
	return n, nil
}
