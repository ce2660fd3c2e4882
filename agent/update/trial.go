package update

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cairn-edge/cairn/agent/config"
	"github.com/cairn-edge/cairn/agent/health"
)

// Recover reads the record and the boot loader's state at the agent's
// start and finishes what the last boot left: it reports a trial boot
// (which Gate then judges), a commit whose record a cut lost, or a
// rollback, for which it marks the trial slot bad, remembers its digest
// and runs OnRollback. It reports whether this boot is a trial.
func (u *Updater) Recover(ctx context.Context) (trial bool, err error) {
	o := u.o
	rec, lerr := loadRecord(o.RecordPath)
	if lerr != nil {
		o.Log.Warn("upgrade record unreadable; starting a new one", "err", lerr)
	}
	u.mu.Lock()
	u.rec = rec
	u.mu.Unlock()

	trial, err = o.Bootloader.Trial(o.Running)
	if err != nil {
		return false, fmt.Errorf("reading the boot loader's state: %w", err)
	}
	if trial {
		if rec.Slot != o.Running || rec.Phase.Ended() {
			// Armed, but the record of it was lost: go on with what the
			// slot says of itself.
			rec.Phase, rec.Slot, rec.Version, rec.Started = PhaseArmed, o.Running, o.Release.Version, time.Now().UTC()
			rec.FromSlot = o.Running.Other()
		}
		if err := u.setPhase(PhaseTrial, ""); err != nil {
			o.Log.Warn("upgrade record", "err", err)
		}
		o.Say("upgrade trial slot=%s version=%s", o.Running, o.Release.Version)
		return true, nil
	}

	switch {
	case rec.Phase == PhaseArmed || rec.Phase == PhaseTrial || rec.Phase == PhaseGateFailed:
		if rec.Slot == o.Running {
			// Committed, and cut before the record said so.
			return false, u.committed(ctx)
		}
		reason := rec.Reason
		switch {
		case rec.Phase == PhaseGateFailed && reason != "":
		case o.WatchdogReset:
			reason = fmt.Sprintf("the trial boot of slot %s (version %s) hung: the watchdog reset the box before a health verdict", rec.Slot, rec.Version)
		default:
			reason = fmt.Sprintf("the trial boot of slot %s (version %s) did not reach a health verdict: kernel panic, hung boot, watchdog reset or power loss", rec.Slot, rec.Version)
		}
		return false, u.rolledBack(ctx, reason)
	case rec.Phase.staging():
		o.Log.Info("an upgrade was interrupted before its reboot; run it again to resume", "ref", rec.Ref, "phase", rec.Phase)
		if err := u.setPhase(PhaseFailed, fmt.Sprintf("interrupted while %s (reboot or power loss); upgrade again to resume", rec.Phase)); err != nil {
			o.Log.Warn("upgrade record", "err", err)
		}
	}
	return false, nil
}

// rolledBack ends an attempt whose trial slot did not commit: the slot is
// marked bad (its entries gone), the digest remembered, OnRollback run.
func (u *Updater) rolledBack(ctx context.Context, reason string) error {
	o := u.o
	bad := o.Running.Other()
	if err := o.Bootloader.MarkBad(bad); err != nil {
		o.Log.Warn("marking the failed slot bad", "slot", bad, "err", err)
	}
	var hookErr error
	if o.OnRollback != nil {
		if hookErr = o.OnRollback(ctx); hookErr != nil {
			o.Log.Error("rollback hook", "err", hookErr)
		}
	}
	u.mu.Lock()
	u.rec.reject(u.rec.Digest)
	u.mu.Unlock()
	if err := u.setPhase(PhaseRolledBack, reason); err != nil {
		o.Log.Warn("upgrade record", "err", err)
	}
	o.Say("rollback to slot=%s reason=%s", o.Running, oneLine(reason))
	return hookErr
}

// committed ends an attempt whose slot is now the default.
func (u *Updater) committed(ctx context.Context) error {
	o := u.o
	if o.OnCommit != nil {
		if err := o.OnCommit(ctx); err != nil {
			o.Log.Warn("commit hook", "err", err)
		}
	}
	if err := u.setPhase(PhaseCommitted, ""); err != nil {
		o.Log.Warn("upgrade record", "err", err)
	}
	o.Say("upgrade committed slot=%s version=%s", o.Running, o.Release.Version)
	return nil
}

// Gate judges a trial boot: it waits, within the image's gate timeout,
// for the gate's health parts to be OK together, then commits the slot;
// otherwise it marks the slot bad and reboots into the old one, whose
// Recover reports the rollback with this reason. It returns once the
// verdict is on disk (and the reboot asked for).
func (u *Updater) Gate(ctx context.Context) error {
	o := u.o
	parts := o.GateParts
	if len(parts) == 0 {
		parts = defaultGateParts(o.Health.Snapshot())
	}
	timeout := o.Config.Gate()
	gctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	snap, err := o.Health.Wait(gctx, health.PartsOK(parts...))
	if err == nil {
		o.Log.Info("health gate passed", "parts", parts, "took", time.Since(start).Round(time.Millisecond))
		if err := o.Bootloader.Commit(o.Running); err != nil {
			return u.gateFailed(fmt.Sprintf("committing slot %s: %v", o.Running, err))
		}
		return u.committed(ctx)
	}
	if ctx.Err() != nil {
		return ctx.Err() // the agent stops: the next boot decides
	}
	return u.gateFailed(fmt.Sprintf("health gate failed after %s: %s", timeout, failing(snap, parts)))
}

// gateFailed marks the trial slot bad, records why and reboots.
func (u *Updater) gateFailed(reason string) error {
	o := u.o
	if err := u.setPhase(PhaseGateFailed, reason); err != nil {
		o.Log.Warn("upgrade record", "err", err)
	}
	o.Say("upgrade gate failed slot=%s reason=%s; rebooting into slot %s", o.Running, oneLine(reason), o.Running.Other())
	if err := o.Bootloader.MarkBad(o.Running); err != nil {
		// The trial entry is spent anyway: the next boot is the old slot.
		o.Log.Error("marking the trial slot bad", "err", err)
	}
	return errors.Join(errors.New(reason), o.Reboot(bootRebootPlain))
}

// defaultGateParts are every attached part but the clock: a node that
// cannot reach NTP still runs, and an upgrade must not be rolled back for it.
func defaultGateParts(s health.Snapshot) []string {
	var names []string
	for _, p := range s.Parts {
		if p.Name != "clock" {
			names = append(names, p.Name)
		}
	}
	return names
}

// failing names the gate's parts that are not OK, with their reasons.
func failing(s health.Snapshot, parts []string) string {
	var out string
	for _, p := range s.Parts {
		if slices.Contains(parts, p.Name) && p.State != health.OK {
			if out != "" {
				out += "; "
			}
			out += fmt.Sprintf("%s %s: %s", p.Name, p.State, p.Reason)
		}
	}
	if out == "" {
		out = "no verdict"
	}
	return out
}

// Checks are the image's user checks as health checkers.
func Checks(u *config.Update) []health.Checker {
	if u == nil {
		return nil
	}
	var cs []health.Checker
	for _, c := range u.Checks {
		if c.TCP != "" {
			cs = append(cs, health.TCPCheck{Address: c.TCP})
		} else {
			cs = append(cs, health.HTTPCheck{URL: c.HTTP})
		}
	}
	return cs
}
