package extlinux

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/contract"
)

// Probe tells whether fsys, a mounted ESP, is booted by U-Boot's extlinux
// as this package lays it out: it holds contract.ExtlinuxConf, and that
// parses. An ESP without one is another family's (systemd-boot's); one
// whose menu does not parse is an error, not a guess.
func Probe(fsys bootloader.FS) (bool, error) {
	b, err := fsys.ReadFile(contract.ExtlinuxConf)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", contract.ExtlinuxConf, err)
	}
	if _, err := ParseConf(b); err != nil {
		return false, err
	}
	return true, nil
}

// Trial implements bootloader.Bootloader: this boot is a trial if the
// flag says the running slot's trial booted and the DEFAULT is back on
// the other slot. If the flag still says "armed" with the running slot
// the DEFAULT (cairn-init did not revert), Trial reverts first. A running
// slot that is neither the DEFAULT nor a trial is no trial, if it is
// complete (U-Boot fell back to it, or it was picked at the console), and
// an error if not (marked bad, or half installed).
func (l *Loader) Trial(running contract.Slot) (bool, error) {
	st, err := l.requireConf("telling a trial")
	if err != nil {
		return false, err
	}
	if st.flag.Armed(running) && st.conf.Default == running {
		l.log.Warn("the trial is still U-Boot's default: cairn-init did not set it back; doing it now", "slot", running)
		if err := l.revert(&st, running); err != nil {
			return false, err
		}
	}
	switch {
	case st.flag == Flag{Slot: running, Booted: true} && st.conf.Default != running:
		return true, nil
	case st.conf.Default == running:
		return false, nil
	}
	if _, err := l.complete(st, running); err != nil {
		return false, fmt.Errorf("the running slot %s is not U-Boot's default and %w; it was marked bad or is being installed: reboot into slot %s", running, err, st.conf.Default)
	}
	l.log.Warn("running a slot that is neither U-Boot's default nor a trial: U-Boot fell back to it, or it was picked at the console", "running", running, "default", st.conf.Default)
	return false, nil
}

// Default implements bootloader.Bootloader: the slot DEFAULT names, which
// U-Boot boots next (an armed trial's, until its cairn-init sets it back).
func (l *Loader) Default() (contract.Slot, error) {
	st, err := l.requireConf("reading the default slot")
	if err != nil {
		return "", err
	}
	return st.conf.Default, nil
}
