package extlinux

import (
	"fmt"
	"log/slog"

	"github.com/cairn-edge/cairn/agent/contract"
)

// Reverted is what RevertTrial did.
type Reverted struct {
	// Trial is the slot whose armed trial had its DEFAULT set back, and
	// Default the committed slot the DEFAULT now names; both empty when
	// there was nothing to set back.
	Trial, Default contract.Slot
}

// RevertTrial is what cairn-init's stage 1 calls on a board booted by
// U-Boot's extlinux (the kernel command line has contract.ExtlinuxParam),
// with the ESP mounted read-write as fsys and running the slot named by
// cairn.slot=, before it mounts the slot: as early as it can, since until
// then a hang boots the trial again.
//
// If the flag says a trial is armed and the DEFAULT names it, RevertTrial
// sets the DEFAULT back on the committed slot, then marks the flag
// "booted" (or clears it, if U-Boot booted another slot than the trial),
// each write one sector in place: from then on a hang, a watchdog reset or
// a power cut boots the committed slot, and Trial tells the agent that
// this boot is the trial, to commit or mark bad. On any other boot it
// writes nothing. If the committed slot is not complete it leaves the
// trial the DEFAULT and says so: better a trial than nothing to boot.
//
// It never fails the boot: an error is for cairn-init to print, and the
// boot goes on.
func RevertTrial(fsys FS, running contract.Slot, log *slog.Logger) (Reverted, error) {
	l := New(fsys, log)
	st, err := l.requireConf("setting a trial's default back")
	if err != nil {
		return Reverted{}, err
	}
	trial := st.flag.Slot
	if trial == "" || !st.flag.Armed(trial) || st.conf.Default != trial {
		return Reverted{}, nil
	}
	if err := l.revert(&st, running); err != nil {
		return Reverted{}, err
	}
	return Reverted{Trial: trial, Default: st.conf.Default}, nil
}

// unboot makes slot bootable by nothing, one write at a time: the DEFAULT
// on the other slot (if the menu exists and slot was its armed trial), the
// flag cleared if it names slot, slot's stamp removed, its label emptied.
// The caller checked that the other slot is complete and committed.
func (l *Loader) unboot(st *state, slot contract.Slot) error {
	if st.hasConf {
		if err := l.setDefault(st, slot.Other()); err != nil {
			return err
		}
	}
	if st.flag.Slot == slot {
		if err := l.setFlag(st, Flag{}); err != nil {
			return err
		}
	}
	if err := l.fs.Remove(stampPath(slot)); err != nil {
		return fmt.Errorf("removing %s: %w", stampPath(slot), err)
	}
	if st.conf.hasLabel(slot) {
		return l.writeConf(st, st.conf.withLabel(slot, nil))
	}
	return nil
}

// revert sets an armed trial's DEFAULT back on the committed slot, then
// the flag to "booted" (running the trial) or none.
func (l *Loader) revert(st *state, running contract.Slot) error {
	trial := st.flag.Slot
	good := trial.Other()
	op := fmt.Sprintf("setting the trial of slot %s back to slot %s", trial, good)
	if _, err := l.complete(*st, good); err != nil {
		return fmt.Errorf("%s: the committed slot is not complete, so the trial stays U-Boot's default: %w", op, err)
	}
	if err := l.setDefault(st, good); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	f := Flag{}
	if running == trial {
		f = Flag{Slot: trial, Booted: true}
	}
	if err := l.setFlag(st, f); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	l.log.Info("trial boot: U-Boot's default is back on the committed slot", "trial", trial, "default", good, "running", running)
	return nil
}

// MarkBad implements bootloader.Bootloader: the other slot must be
// complete and slot not the committed default; then the DEFAULT goes back
// to the other slot if slot's trial was armed, the flag is cleared if it
// names slot, slot's stamp is removed and its label emptied, so that
// neither ArmTrial, Commit, DEFAULT nor U-Boot's fallback takes it before
// it is installed again.
func (l *Loader) MarkBad(slot contract.Slot) error {
	op := fmt.Sprintf("marking slot %s bad", slot)
	st, err := l.requireConf(op)
	if err != nil {
		return err
	}
	good := slot.Other()
	if st.committed() == slot {
		return fmt.Errorf("%s: it is the committed default, so nothing would be left to boot (commit slot %s first)", op, good)
	}
	if _, err := l.complete(st, good); err != nil {
		return fmt.Errorf("%s: the committed slot %s is not complete, so nothing would be left to boot: %w", op, good, err)
	}
	if err := l.unboot(&st, slot); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	l.log.Info("slot marked bad", "slot", slot, "default", good)
	return nil
}
