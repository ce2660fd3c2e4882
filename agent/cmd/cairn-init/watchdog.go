package main

import (
	"errors"
	"io/fs"

	"github.com/cairn-edge/cairn/agent/watchdog"
)

// watchdogPath is the device stage 1 arms; a seam for tests.
var watchdogPath = watchdog.Path

// armWatchdog starts the hardware watchdog with the boot timeout
// (cairn.watchdog= on the kernel command line, watchdog.BootTimeout
// without it) and closes it without disarming it: the timer runs on
// through the switch to the slot, until the agent opens the device and
// takes over. A boot that hangs before then (a slot that never mounts, an
// init or agent that wedges) ends in a reset, and on a trial boot the
// boot loader's counting then starts the old slot.
//
// It runs after the initramfs modules are loaded (the watchdog's driver is
// among them) and never fails the boot: without a watchdog the box boots
// as it did before, only without this net.
func armWatchdog(cl watchdog.Params) {
	timeout, err := watchdog.TimeoutParam(cl)
	if err != nil {
		say("warning: %v; using %ds", err, int(timeout.Seconds()))
	}
	if timeout == 0 {
		log.Info("watchdog off", "param", watchdog.Param+"=0")
		return
	}
	d, err := watchdog.Open(watchdogPath)
	if errors.Is(err, fs.ErrNotExist) {
		log.Info("no watchdog device; a hung boot will not reset the box", "path", watchdogPath)
		return
	}
	if err != nil {
		say("warning: %v; a hung boot will not reset the box", err)
		return
	}
	// Opening started the timer with the driver's default, which may be
	// too short for this boot: a box that resets before it is up would
	// reset again on either slot. Better no watchdog than that.
	got, err := d.SetTimeout(timeout)
	if err == nil && got < timeout {
		say("warning: watchdog %s took timeout=%ds for the %ds asked", d.Identity(), int(got.Seconds()), int(timeout.Seconds()))
	}
	if err != nil {
		say("warning: %v; watchdog left off (set %s to a value the driver accepts)", err, watchdog.Param)
		if err := d.Disarm(); err != nil {
			say("warning: %v", err)
		}
		return
	}
	if err := d.Ping(); err != nil {
		log.Warn("watchdog ping", "err", err)
	}
	if err := d.Close(); err != nil {
		log.Warn("closing the watchdog", "err", err)
	}
	if d.Options()&watchdog.MagicClose == 0 {
		// Its driver stops the timer on every close, so it cannot be
		// handed over to the slot.
		say("warning: watchdog %s stops when closed; the boot is not covered until the agent opens it", d.Identity())
		return
	}
	say("watchdog armed timeout=%ds", int(got.Seconds()))
	log.Info("watchdog", "device", watchdogPath, "driver", d.Identity(), "timeout_s", int(got.Seconds()))
}
