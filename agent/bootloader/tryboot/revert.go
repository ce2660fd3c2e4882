package tryboot

import (
	"fmt"

	"github.com/cairn-edge/cairn/agent/contract"
)

// MarkBad implements bootloader.Bootloader: the other slot must be the
// committed default and complete; then slot's stamp is removed, so neither
// ArmTrial nor Commit takes it, and its config.txt, so that the firmware
// finds no kernel there even with a stray tryboot flag.
func (l *Loader) MarkBad(slot contract.Slot) error {
	op := fmt.Sprintf("marking slot %s bad", slot)
	ab, _, err := l.requireAutoboot(op)
	if err != nil {
		return err
	}
	if ab.Default == slot {
		return fmt.Errorf("%s: it is the committed default, so nothing would be left to boot (commit slot %s first)", op, slot.Other())
	}
	if _, err := l.installed(ab.Default); err != nil {
		return fmt.Errorf("%s: the default slot %s is not complete, so nothing would be left to boot: %w", op, ab.Default, err)
	}
	fsys := l.boot[slot]
	for _, name := range []string{contract.RPiStampFile, contract.RPiConfigFile} {
		if err := fsys.Remove(name); err != nil {
			return fmt.Errorf("%s: removing %s's %s: %w", op, slot.RPiBootLabel(), name, err)
		}
	}
	l.log.Info("slot marked bad", "slot", slot, "default", ab.Default)
	return nil
}
