package main

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/cairn-edge/cairn/agent/boot/cmdline"
	"github.com/cairn-edge/cairn/agent/watchdog"
)

// openWatchdog opens the hardware watchdog cairn-init armed in the
// initramfs: from here the agent is the one that pets it, so a boot whose
// agent never comes up is reset by it (and on a trial boot the boot loader
// then starts the old slot). nil when the box has none or the kernel
// command line turned it off (cairn.watchdog=0: opening would start it).
func openWatchdog(log *slog.Logger) *watchdog.Device {
	raw, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return nil
	}
	cl, err := cmdline.Parse(string(raw))
	if err != nil {
		return nil
	}
	if t, _ := watchdog.TimeoutParam(cl); t == 0 {
		return nil
	}
	d, err := watchdog.Open(watchdog.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		log.Warn("watchdog", "err", err)
		return nil
	}
	log.Info("watchdog taken over", "driver", d.Identity(), "timeout", d.Timeout())
	return d
}

// watchdogReset reports whether the watchdog reset the box before this
// boot (a trial that hung).
func watchdogReset(d *watchdog.Device) bool {
	if d == nil {
		return false
	}
	st, err := d.BootStatus()
	return err == nil && st&watchdog.CardReset != 0
}

// settleWatchdog is the watchdog's part after the upgrade state is known.
// A committed boot disarms it (a slot that hangs later is restarted by
// cairn-init, not reset); a driver that cannot stop is pinged for good. A
// trial boot is pinged until the gate's verdict, and at most until the
// gate's deadline and a minute: a gate that is itself stuck is then ended
// by the hardware. It returns the keeper to Stop at the verdict, or nil.
func settleWatchdog(ctx context.Context, d *watchdog.Device, trial bool, gate time.Duration, log *slog.Logger) *watchdog.Keeper {
	if d == nil {
		return nil
	}
	if trial {
		kctx, cancel := context.WithTimeout(ctx, gate+time.Minute)
		k := watchdog.Keep(kctx, d)
		go func() { <-k.Done(); cancel() }()
		return k
	}
	err := d.Disarm()
	switch {
	case err == nil:
		log.Info("watchdog disarmed: a committed boot")
		return nil
	case errors.Is(err, watchdog.ErrNoWayOut):
		log.Info("watchdog cannot be stopped; pinging it for good")
	default:
		log.Warn("watchdog still running after the disarm; pinging it", "err", err)
		if d, err = watchdog.Open(watchdog.Path); err != nil {
			log.Warn("watchdog", "err", err)
			return nil
		}
	}
	watchdog.Keep(ctx, d)
	return nil
}

// releaseWatchdog ends a trial's keeper: disarmed after a commit, left
// armed after a failed gate, so a reboot that hangs still ends in a reset.
func releaseWatchdog(k *watchdog.Keeper, end watchdog.End, log *slog.Logger) {
	if k == nil {
		return
	}
	if err := k.Stop(end); err != nil {
		log.Warn("watchdog", "end", end, "err", err)
		return
	}
	log.Info("watchdog released", "end", end)
}
