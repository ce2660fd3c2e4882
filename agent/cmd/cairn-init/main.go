// Command cairn-init is the PID 1 of a Cairn image. The same binary runs
// twice:
//
//   - stage 1, as /init in the initramfs (the initramfs holds the marker
//     file /etc/cairn/initramfs): mount the API filesystems, load the
//     modules needed to reach the disk, mount the slot named by
//     cairn.slot= read-only, prepare the data partition and mount it at
//     /var, then switch root and execute /sbin/init of the slot;
//   - stage 2, as /sbin/init in the slot: load the slot's modules, count
//     the boot, print the console contract lines, then reap orphans and
//     supervise host services until the power key, SIGTERM (poweroff) or
//     SIGINT (Ctrl-Alt-Del, reboot).
//
// Console contract (tests match these lines exactly):
//
//	cairn: init ok slot=a version=0.1.0
//	cairn: data ok boots=1 size=2016MiB
//	cairn: poweroff | cairn: reboot
//	cairn: fatal: <what failed and what to do>
package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/cairn-edge/cairn/agent/boot/cmdline"
	"github.com/cairn-edge/cairn/agent/boot/modules"
	"github.com/cairn-edge/cairn/agent/console"
	"github.com/cairn-edge/cairn/agent/contract"
	"golang.org/x/sys/unix"
)

// InitramfsMarker exists only in the initramfs; its presence selects
// stage 1.
const InitramfsMarker = contract.InitramfsMarker

// The Go runtime settings of the long-running processes of the OS (this
// init, containerd, cairn-agent): they idle nearly all the time and share a
// small box with the workloads, so they trade a little GC work for memory.
// GOGC 25 keeps each heap within a quarter of its live data (and its
// minimum at 1 MiB rather than 4 MiB); memory profiling, which nobody reads
// on a node, is off (its bucket table alone is 1.4 MiB per process).
const memoryGCPercent = 25

var memoryEnv = []string{fmt.Sprintf("GOGC=%d", memoryGCPercent), "GODEBUG=memprofilerate=0"}

func init() { runtime.MemProfileRate = 0 }

// log is for details around the contract lines.
var log = console.Logger()

// FatalDelay is how long a fatal error stays on the console before the
// reboot that lets boot counting fall back to the other slot.
const FatalDelay = 10 * time.Second

func main() {
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "cairn-init: must run as PID 1 (it is the init of a Cairn image; boot the image instead)")
		os.Exit(2)
	}
	if _, err := os.Stat(InitramfsMarker); err == nil {
		log = log.With("stage", 1)
		stage1()
	} else {
		log = log.With("stage", 2)
		debug.SetGCPercent(memoryGCPercent)
		stage2()
	}
}

// say prints a console contract line.
var say = console.Say

// fatal prints the reason, waits FatalDelay and reboots. It never returns:
// PID 1 exiting would panic the kernel, and spinning silently would hide
// the box's state.
func fatal(format string, args ...any) {
	say("fatal: "+format, args...)
	say("rebooting in %s", FatalDelay)
	time.Sleep(FatalDelay)
	unix.Sync()
	for {
		err := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
		say("fatal: reboot failed: %v; trying again in a minute", err)
		time.Sleep(time.Minute)
	}
}

// loadModules loads the modules listed in /etc/cairn/modules of the current
// root (the initramfs or the slot). A module that fails is logged, not
// fatal: the boot goes on as far as it can and says what is missing. The
// error lists the failures, for a later fatal message to quote.
func loadModules(root string) error {
	start := time.Now()
	n, err := modules.LoadList(modules.ListPath)
	log.Info("loaded "+root+" modules", "count", n, "took", time.Since(start).Round(time.Millisecond))
	if err != nil {
		log.Warn("some modules did not load", "err", err)
	}
	return err
}

// kernelCmdline is the parsed kernel command line; init cannot boot without
// it, so failing to read it is fatal.
func kernelCmdline() cmdline.Cmdline {
	raw, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		fatal("reading /proc/cmdline: %v", err)
	}
	cl, err := cmdline.Parse(string(raw))
	if err != nil {
		fatal("%v", err)
	}
	return cl
}

// bootSlot is the slot named on the kernel command line; without one the
// box cannot boot, so it is fatal.
func bootSlot(cl cmdline.Cmdline) contract.Slot {
	slot, err := cl.Slot()
	if err != nil {
		fatal("%v", err)
	}
	return slot
}
