package tryboot

import (
	"fmt"

	"github.com/cairn-edge/cairn/agent/contract"
)

// Commit implements bootloader.Bootloader: slot must be installed; then
// autoboot.txt's [all] names slot's partition and [tryboot] the other's,
// overwritten in place (or written, on a fresh card). A slot already
// committed so is left alone.
func (l *Loader) Commit(slot contract.Slot) error {
	op := fmt.Sprintf("committing slot %s", slot)
	st, err := l.installed(slot)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	ab, raw, ok, err := l.autoboot()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	want := Autoboot{Default: slot, Trial: slot.Other()}
	if ok && ab == want {
		return nil
	}
	if err := l.writeAutoboot(raw, ok, want); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	l.log.Info("slot committed", "slot", slot, "partition", slot.RPiBootPartition(), "version", st.Version)
	return nil
}
