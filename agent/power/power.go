// Package power shuts the box down or reboots it the way PID 1 must: tell
// every process to stop, give it a moment, kill what is left, flush and
// unmount the persistent filesystem, then ask the kernel.
//
//	power.Shutdown(power.Poweroff, power.Options{Console: os.Stdout, Unmount: []string{"/var"}})
//
// A reboot may carry reboot(2)'s RESTART2 argument (the Raspberry Pi's
// tryboot), handed to PID 1 in a file: see SetRebootArg.
//
// The syscalls sit behind package variables so tests can run the sequence
// without a kernel.
package power

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Action is what to do after stopping everything.
type Action int

const (
	// Poweroff switches the machine off.
	Poweroff Action = iota
	// Reboot restarts the machine.
	Reboot
)

// String returns the word printed on the console: "poweroff" or "reboot".
func (a Action) String() string {
	if a == Reboot {
		return "reboot"
	}
	return "poweroff"
}

func (a Action) cmd() int {
	if a == Reboot {
		return unix.LINUX_REBOOT_CMD_RESTART
	}
	return unix.LINUX_REBOOT_CMD_POWER_OFF
}

// Syscalls, replaced in tests.
var (
	kill    = unix.Kill
	sync    = unix.Sync
	reboot  = unix.Reboot
	unmount = unix.Unmount
	mount   = unix.Mount
	sleep   = time.Sleep
	// mountPoints lists the mount points in the order they were mounted;
	// replaced in tests.
	mountPoints = func() ([]string, error) {
		b, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			return nil, err
		}
		return parseMountInfo(string(b)), nil
	}
	// emergencyRemount asks the kernel to remount every file system
	// read-only, forcibly (SysRq u; /proc/sysrq-trigger works whatever
	// kernel.sysrq says); replaced in tests.
	emergencyRemount = func() error { return os.WriteFile("/proc/sysrq-trigger", []byte("u"), 0) }
	// readOnly reports whether the mount at m is read-only now; replaced
	// in tests.
	readOnly = func(m string) bool {
		b, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			return false
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 5 && unescapeOctal(f[4]) == m {
				return slices.Contains(strings.Split(f[5], ","), "ro")
			}
		}
		return false
	}
)

// parseMountInfo returns the mount points of a /proc/PID/mountinfo, in
// its order (the order of mounting), with the kernel's octal escapes
// (\040 for a space) undone.
func parseMountInfo(s string) []string {
	var points []string
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		points = append(points, unescapeOctal(f[4]))
	}
	return points
}

// unescapeOctal undoes the kernel's \NNN escapes.
func unescapeOctal(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountedAfter returns the mount points mounted after dir, the last
// mounted first: the order they can be unmounted in. Below dir they hold
// it (pod volumes); elsewhere they may too (an overlay whose upper
// directory is on it: a container's root file system under /run).
func mountedAfter(dir string, points []string) []string {
	last := slices.Index(points, dir)
	for i, p := range points {
		if p == dir {
			last = i
		}
	}
	if last < 0 {
		return nil
	}
	var out []string
	for i := len(points) - 1; i > last; i-- {
		if p := points[i]; p != "/" && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// userProcesses counts live processes other than PID 1 that are not
// kernel threads; replaced in tests. Kernel threads and zombies have an
// empty /proc/N/cmdline.
var userProcesses = func() int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == 1 {
			continue
		}
		if b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && len(b) > 0 {
			n++
		}
	}
	return n
}

// Options tune Shutdown.
type Options struct {
	// Console receives the "cairn: poweroff" / "cairn: reboot" line.
	Console io.Writer
	// Unmount lists mount points to unmount (or remount read-only) before
	// the reboot call, innermost first; those not mounted are skipped (a
	// UEFI board has no Raspberry Pi boot partitions).
	Unmount []string
	// Grace is how long processes get between SIGTERM and SIGKILL;
	// zero means 5 seconds.
	Grace time.Duration
	// RebootArg, when not empty, makes a Reboot a reboot(2) RESTART2
	// with this argument (see ReadRebootArg); a Poweroff ignores it.
	RebootArg string
}

// Shutdown stops all processes and powers off or reboots (with
// o.RebootArg, if set: should that call fail, without it). It returns
// only if the final reboot(2) call fails.
func Shutdown(a Action, o Options) error {
	if o.Console != nil {
		fmt.Fprintf(o.Console, "cairn: %s\n", a)
	}
	if o.Grace == 0 {
		o.Grace = 5 * time.Second
	}
	// kill(-1) reaches every process but PID 1 itself (kernel threads
	// ignore it); PID 1's reaper keeps collecting the exits meanwhile.
	const step = 50 * time.Millisecond
	if userProcesses() > 0 {
		_ = kill(-1, unix.SIGTERM)
		for waited := time.Duration(0); waited < o.Grace && userProcesses() > 0; waited += step {
			sleep(step)
		}
		if userProcesses() > 0 {
			_ = kill(-1, unix.SIGKILL)
			// A killed process still holds its files until it is gone:
			// a big one (cairn-kube, hundreds of MiB and threads) takes
			// a while under load.
			for waited := time.Duration(0); waited < o.Grace && userProcesses() > 0; waited += step {
				sleep(step)
			}
		}
	}
	sync()
	for _, m := range o.Unmount {
		// What was mounted after it first (a Kubernetes node has pod
		// volumes under /var, and containers' root file systems whose
		// upper directories are on it): their processes are gone, and
		// /var can be neither unmounted nor made read-only, its journal
		// left clean, while they are there.
		points, err := mountPoints()
		if err == nil && !slices.Contains(points, m) {
			continue
		}
		for _, later := range mountedAfter(m, points) {
			if err := unmount(later, 0); err != nil {
				_ = unmount(later, unix.MNT_DETACH)
			}
		}
		if err := unmount(m, 0); err != nil {
			// Busy (a process we could not kill holds a file): make it
			// read-only so the journal is clean, then detach it.
			if rerr := mount("", m, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); rerr != nil {
				// Still busy with no process left (what the kernel
				// holds for mounts gone lazily): the kernel's forced
				// read-only remount, which runs asynchronously.
				_ = emergencyRemount()
				for waited := time.Duration(0); waited < o.Grace && !readOnly(m); waited += step {
					sleep(step)
				}
				if o.Console != nil {
					left, _ := mountPoints()
					fmt.Fprintf(o.Console, "cairn: warning: %s: unmount: %v; read-only: %v; forced read-only: %v (%d processes left; mounted after it: %q)\n", m, err, rerr, readOnly(m), userProcesses(), mountedAfter(m, left))
				}
			}
			_ = unmount(m, unix.MNT_DETACH)
		}
	}
	sync()
	if a == Reboot && o.RebootArg != "" {
		err := restart2(o.RebootArg)
		if err == nil {
			return nil // reboot(2) returns only on failure: a test's fake
		}
		if o.Console != nil {
			fmt.Fprintf(o.Console, "cairn: warning: %v; rebooting without it\n", err)
		}
	}
	return reboot(a.cmd())
}
