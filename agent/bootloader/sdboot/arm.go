package sdboot

import (
	"fmt"

	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/contract"
)

// ArmTrial implements bootloader.Bootloader: it writes slot's entry at a new
// generation with one try, then removes slot's older entries. A plain reboot
// boots it.
func (l *Loader) ArmTrial(slot contract.Slot) (bootloader.Reboot, error) {
	es, err := l.entries()
	if err != nil {
		return bootloader.Reboot{}, err
	}
	if len(es) > 0 && es[0].Slot == slot && !es[0].Counting {
		return bootloader.Reboot{}, fmt.Errorf("arming a trial of slot %s: it is already the committed default (%s)", slot, es[0].file)
	}
	if _, ok := committed(es, slot.Other()); !ok {
		return bootloader.Reboot{}, fmt.Errorf("arming a trial of slot %s: slot %s has no committed entry in %s to fall back to; commit it first", slot, slot.Other(), contract.ESPEntriesDir)
	}
	content, err := l.readStaged(slot)
	if err != nil {
		return bootloader.Reboot{}, err
	}
	e, err := l.writeEntry(es, slot, true, content)
	if err != nil {
		return bootloader.Reboot{}, err
	}
	l.log.Info("trial boot armed", "slot", slot, "entry", e.FileName())
	return bootloader.Reboot{}, nil
}
