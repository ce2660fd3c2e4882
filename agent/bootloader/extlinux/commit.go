package extlinux

import (
	"fmt"

	"github.com/cairn-edge/cairn/agent/contract"
)

// Commit implements bootloader.Bootloader: slot must be complete; then the
// DEFAULT names it and the flag is cleared (on its armed trial, clearing
// the flag is the commit). On a fresh ESP it writes the menu and the flag.
// A slot already committed so is left alone.
func (l *Loader) Commit(slot contract.Slot) error {
	op := fmt.Sprintf("committing slot %s", slot)
	st, err := l.read()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	lbl, err := l.complete(st, slot)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if !st.hasConf {
		if err := l.firstConf(&st, slot); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	if st.committed() == slot && st.conf.Default == slot && st.hasFlag && st.flag == (Flag{}) {
		return nil
	}
	if st.flag.Armed(slot) && st.conf.Default == slot {
		err = l.setFlag(&st, Flag{})
	} else if err = l.setDefault(&st, slot); err == nil {
		err = l.setFlag(&st, Flag{})
	}
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	l.log.Info("slot committed", "slot", slot, "version", lbl.Version)
	return nil
}

// firstConf writes a fresh ESP's menu, with the label of every complete
// slot, and the DEFAULT on slot.
func (l *Loader) firstConf(st *state, slot contract.Slot) error {
	c := Conf{Default: slot, Labels: map[contract.Slot]Label{}}
	for _, s := range contract.Slots {
		if lbl, err := l.complete(*st, s); err == nil {
			c.Labels[s] = lbl
		}
	}
	return l.writeConf(st, c)
}
