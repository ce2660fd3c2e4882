package sdboot

import (
	"github.com/cairn-edge/cairn/agent/contract"
)

// Commit implements bootloader.Bootloader: it writes slot's entry at a new
// generation without counters, then removes slot's older entries (the
// trial's). The other slot's entry stays, after it in the order. If slot
// already is the committed default (a Commit cut before its removals), it
// only removes.
func (l *Loader) Commit(slot contract.Slot) error {
	es, err := l.entries()
	if err != nil {
		return err
	}
	if len(es) > 0 && es[0].Slot == slot && !es[0].Counting {
		return l.removeEntries(es[1:], slot)
	}
	content, err := l.readStaged(slot)
	if err != nil {
		return err
	}
	e, err := l.writeEntry(es, slot, false, content)
	if err != nil {
		return err
	}
	l.log.Info("slot committed", "slot", slot, "entry", e.FileName())
	return nil
}
