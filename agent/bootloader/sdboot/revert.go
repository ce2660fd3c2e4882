package sdboot

import (
	"fmt"

	"github.com/cairn-edge/cairn/agent/contract"
)

// MarkBad implements bootloader.Bootloader: it removes slot's entries, then
// its staged entry, so neither the firmware nor a later ArmTrial or Commit
// boots it before it is installed anew. The other slot must have a
// committed entry: it is the default then.
func (l *Loader) MarkBad(slot contract.Slot) error {
	es, err := l.entries()
	if err != nil {
		return err
	}
	if _, ok := committed(es, slot.Other()); !ok {
		return fmt.Errorf("marking slot %s bad: slot %s has no committed entry in %s, so nothing would be left to boot", slot, slot.Other(), contract.ESPEntriesDir)
	}
	if err := l.removeEntries(es, slot); err != nil {
		return err
	}
	staged := stagedEntry(slot)
	if err := l.fs.Remove(staged); err != nil {
		return fmt.Errorf("removing %s: %w", staged, err)
	}
	l.log.Info("slot marked bad", "slot", slot, "default", slot.Other())
	return nil
}
