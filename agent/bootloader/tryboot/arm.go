package tryboot

import (
	"fmt"

	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/contract"
)

// ArmTrial implements bootloader.Bootloader: slot must be installed and not
// the default, and the default complete (it is what a failed trial falls
// back to). If [tryboot] names another partition, autoboot.txt is
// overwritten in place; a reboot with contract.RPiTrybootArg tries it.
func (l *Loader) ArmTrial(slot contract.Slot) (bootloader.Reboot, error) {
	op := fmt.Sprintf("arming a trial of slot %s", slot)
	ab, raw, err := l.requireAutoboot(op)
	if err != nil {
		return bootloader.Reboot{}, err
	}
	if ab.Default == slot {
		return bootloader.Reboot{}, fmt.Errorf("%s: it is already the committed default", op)
	}
	if _, err := l.installed(slot); err != nil {
		return bootloader.Reboot{}, fmt.Errorf("%s: %w", op, err)
	}
	if _, err := l.installed(ab.Default); err != nil {
		return bootloader.Reboot{}, fmt.Errorf("%s: the default slot %s, to fall back to, is not complete: %w", op, ab.Default, err)
	}
	if ab.Trial != slot {
		if err := l.writeAutoboot(raw, true, Autoboot{Default: ab.Default, Trial: slot}); err != nil {
			return bootloader.Reboot{}, fmt.Errorf("%s: %w", op, err)
		}
	}
	l.log.Info("trial boot armed", "slot", slot, "partition", slot.RPiBootPartition(), "reboot", contract.RPiTrybootArg)
	return bootloader.Reboot{Arg: contract.RPiTrybootArg}, nil
}
