package tryboot

import (
	"fmt"

	"github.com/cairn-edge/cairn/agent/contract"
)

// Trial implements bootloader.Bootloader: this boot is a trial if the
// firmware says it was a tryboot of running's partition, and running is
// not autoboot.txt's default (a trial already committed is a good boot).
// A running slot that is not the default must be installed (its stamp):
// one marked bad, or half installed, is an error, as it is no trial to
// commit.
func (l *Loader) Trial(running contract.Slot) (bool, error) {
	rec, err := ReadBootRecord(l.dt)
	if err != nil {
		return false, err
	}
	ab, _, err := l.requireAutoboot("telling a trial")
	if err != nil {
		return false, err
	}
	if rec.Partition != running.RPiBootPartition() {
		l.log.Warn("the firmware booted another slot's partition than the running slot's", "running", running, "partition", rec.Partition, "want", running.RPiBootPartition())
	}
	if ab.Default == running {
		return false, nil
	}
	if _, err := l.installed(running); err != nil {
		return false, fmt.Errorf("the running slot %s is not the default and %w; it was marked bad or is being installed: reboot into slot %s", running, err, ab.Default)
	}
	return rec.Tryboot && rec.Partition == running.RPiBootPartition(), nil
}

// Default implements bootloader.Bootloader: the slot of [all]'s
// boot_partition.
func (l *Loader) Default() (contract.Slot, error) {
	ab, _, err := l.requireAutoboot("reading the default slot")
	if err != nil {
		return "", err
	}
	return ab.Default, nil
}
