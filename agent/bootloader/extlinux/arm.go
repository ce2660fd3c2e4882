package extlinux

import (
	"fmt"

	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/contract"
)

// ArmTrial implements bootloader.Bootloader: both slots must be complete
// and slot not the committed default; then the flag says "armed" and the
// DEFAULT names slot. A plain reboot tries it, and the trial's cairn-init
// sets the DEFAULT back (RevertTrial).
func (l *Loader) ArmTrial(slot contract.Slot) (bootloader.Reboot, error) {
	op := fmt.Sprintf("arming a trial of slot %s", slot)
	st, err := l.requireConf(op)
	if err != nil {
		return bootloader.Reboot{}, err
	}
	if st.committed() == slot {
		return bootloader.Reboot{}, fmt.Errorf("%s: it is already the committed default", op)
	}
	if _, err := l.complete(st, slot); err != nil {
		return bootloader.Reboot{}, fmt.Errorf("%s: %w", op, err)
	}
	if _, err := l.complete(st, slot.Other()); err != nil {
		return bootloader.Reboot{}, fmt.Errorf("%s: the committed slot %s, to fall back to, is not complete: %w", op, slot.Other(), err)
	}
	if err := l.setFlag(&st, Flag{Slot: slot}); err != nil {
		return bootloader.Reboot{}, fmt.Errorf("%s: %w", op, err)
	}
	if err := l.setDefault(&st, slot); err != nil {
		return bootloader.Reboot{}, fmt.Errorf("%s: %w", op, err)
	}
	l.log.Info("trial boot armed", "slot", slot, "default", labelName(slot), "committed", slot.Other())
	return bootloader.Reboot{}, nil
}
