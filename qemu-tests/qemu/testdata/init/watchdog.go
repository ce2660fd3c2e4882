package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cairn-edge/cairn/agent/boot/modules"
	"github.com/cairn-edge/cairn/agent/watchdog"
)

// watchdogTimeout is the timeout the watchdog actions arm, from
// cairntest_timeout= on the kernel command line (seconds; default 5).
func watchdogTimeout() time.Duration {
	if n, err := strconv.Atoi(os.Getenv("cairntest_timeout")); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	return 5 * time.Second
}

// armWatchdog loads the initramfs's modules (the watchdog's driver) the
// way cairn-init does, opens the watchdog, says why the last reset
// happened, and sets the timeout.
func armWatchdog() (*watchdog.Device, bool) {
	for _, m := range []struct{ src, dst, fs string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"},
	} {
		if err := syscall.Mount(m.src, m.dst, m.fs, 0, ""); err != nil {
			fmt.Printf("cairn-test: mount %s: %v\n", m.dst, err)
		}
	}
	if n, err := modules.LoadList(modules.ListPath); err != nil {
		fmt.Printf("cairn-test: modules: loaded %d: %v\n", n, err)
	}
	d, err := watchdog.Open(watchdog.Path)
	if err != nil {
		fmt.Printf("cairn-test: watchdog: %v\n", err)
		return nil, false
	}
	status, err := d.BootStatus()
	fmt.Printf("cairn-test: watchdog %q bootstatus=%#x cardreset=%v err=%v\n", d.Identity(), uint32(status), status&watchdog.CardReset != 0, err)
	got, err := d.SetTimeout(watchdogTimeout())
	if err != nil {
		fmt.Printf("cairn-test: watchdog: %v\n", err)
		return nil, false
	}
	fmt.Printf("cairn-test: watchdog armed timeout=%ds\n", int(got.Seconds()))
	return d, true
}

// watchdogHang arms the watchdog, leaves it armed as cairn-init does on
// its way to the slot, and hangs.
func watchdogHang() {
	d, ok := armWatchdog()
	if !ok {
		return
	}
	if err := d.Close(); err != nil {
		fmt.Printf("cairn-test: watchdog close: %v\n", err)
	}
	fmt.Println("cairn-test: hanging")
}

// watchdogDisarm arms the watchdog, keeps it for two timeouts as the
// agent does during a trial boot, then disarms it as after a commit.
func watchdogDisarm() {
	d, ok := armWatchdog()
	if !ok {
		return
	}
	k := watchdog.Keep(context.Background(), d)
	time.Sleep(2 * d.Timeout())
	n, _, _ := k.Pings()
	if err := k.Stop(watchdog.Disarm); err != nil {
		fmt.Printf("cairn-test: watchdog disarm: %v\n", err)
		return
	}
	// What the kernel says, and Disarm checked.
	state, err := os.ReadFile("/sys/class/watchdog/watchdog0/state")
	fmt.Printf("cairn-test: watchdog disarmed after %d pings state=%s err=%v\n", n, strings.TrimSpace(string(state)), err)
}
