package sdboot

import (
	"fmt"

	"github.com/cairn-edge/cairn/agent/contract"
)

// Trial implements bootloader.Bootloader: this boot is a trial if the
// running slot's first entry carries boot counters (systemd-boot has taken
// its try, "+0-1", or could not rename it, "+1").
func (l *Loader) Trial(running contract.Slot) (bool, error) {
	es, err := l.entries()
	if err != nil {
		return false, err
	}
	for _, e := range es {
		if e.Slot == running {
			return e.Counting, nil
		}
	}
	return false, fmt.Errorf("the running slot %s has no entry in %s: it was marked bad or is being installed; install and commit it again, or reboot into slot %s", running, contract.ESPEntriesDir, running.Other())
}

// Default implements bootloader.Bootloader: the slot of the first entry in
// systemd-boot's order.
func (l *Loader) Default() (contract.Slot, error) {
	es, err := l.entries()
	if err != nil {
		return "", err
	}
	if len(es) == 0 {
		return "", fmt.Errorf("no Cairn entry in %s: the firmware has nothing to boot (install and commit a slot)", contract.ESPEntriesDir)
	}
	return es[0].Slot, nil
}
