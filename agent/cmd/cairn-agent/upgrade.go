package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/config"
	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/agent/health"
	"github.com/cairn-edge/cairn/agent/kubeboot"
	"github.com/cairn-edge/cairn/agent/power"
	"github.com/cairn-edge/cairn/agent/release"
	"github.com/cairn-edge/cairn/agent/update"
	"golang.org/x/sys/unix"
)

// checksEvery is how often the image's user checks (update.checks) run.
const checksEvery = 10 * time.Second

// startUpdates makes the node's Updater and finishes what the last boot
// left (a trial to judge, a rollback or commit to report). It runs before
// Kubernetes starts, so a rollback's datastore restore comes first. It
// returns nil on an image without an update section: such a node refuses
// upgrades. watchdogReset says the watchdog reset the box before this boot.
// recoverErr is what went wrong finishing the last attempt, such as a
// rollback whose datastore restore failed. media says which boot loader
// the node has (detectBootMedia).
func startUpdates(ctx context.Context, conf *config.Update, rel release.Release, slot string, media bootMedia, hm *health.Model, watchdogReset bool, log *slog.Logger) (u *update.Updater, trial bool, recoverErr error) {
	if conf == nil {
		return nil, false, nil
	}
	running, err := contract.ParseSlot(slot)
	if err != nil {
		say("warning: upgrades: %v", err)
		return nil, false, nil
	}
	bl, esp, err := media.loader(log)
	if err != nil {
		say("warning: upgrades: %v", err)
		return nil, false, nil
	}
	keys, err := conf.PublicKeys()
	if err != nil {
		say("warning: upgrades: %v", err)
		return nil, false, nil
	}
	if checks := update.Checks(conf); len(checks) > 0 {
		go health.RunChecks(ctx, hm.Part("checks"), checksEvery, checks...)
	}
	regs := update.NewRegistries(conf, log)
	u = update.New(update.Options{
		Release:    rel,
		Running:    running,
		Config:     conf,
		Registry:   regs,
		Verify:     regs.Verifier(keys),
		Bootloader: bl,
		ESP:        esp,
		Slots:      update.Partitions{},
		Health:     hm,
		Reboot:     rebootInto,
		// A reset by the watchdog names the cause of a rollback.
		WatchdogReset: watchdogReset,
		// The Kubernetes datastore as it was before the trial, restored
		// on a rollback before the old cairn-kube starts (this runs
		// before Kubernetes does), dropped at the commit. Without a
		// datastore they do nothing.
		BeforeTrial: kubeboot.Snapshot,
		OnRollback:  func(context.Context) error { _, err := kubeboot.Restore(); return err },
		OnCommit:    func(context.Context) error { return kubeboot.DropSnapshot() },
		Say:         say,
		Log:         log,
	})
	trial, recoverErr = u.Recover(ctx)
	if recoverErr != nil {
		say("warning: upgrades: %v", recoverErr)
	}
	return u, trial, recoverErr
}

// rebootInto reboots the node for a trial or a rollback: cairn-init stops
// everything in order and reboots, with r.Arg (the Raspberry Pi's
// tryboot) as reboot(2)'s RESTART2 argument, handed over in
// contract.RebootArgFile; a plain reboot (systemd-boot's trial, every
// rollback) removes a file left there.
func rebootInto(r bootloader.Reboot) error {
	if err := power.SetRebootArg(contract.RebootArgFile, r.Arg); err != nil {
		return fmt.Errorf("handing the reboot argument to cairn-init: %w", err)
	}
	time.AfterFunc(500*time.Millisecond, func() { unix.Kill(1, unix.SIGINT) })
	return nil
}
