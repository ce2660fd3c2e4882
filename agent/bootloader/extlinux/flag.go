package extlinux

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/cairn-edge/cairn/agent/contract"
)

// Flag is the trial flag, contract.ExtlinuxTrialFile.
type Flag struct {
	// Slot is the trial's slot; empty: no trial.
	Slot contract.Slot
	// Booted is false while the trial is armed (ArmTrial made its label
	// the DEFAULT), true once the trial booted and its cairn-init set the
	// DEFAULT back to the committed slot (RevertTrial).
	Booted bool
}

// Armed tells whether f is an armed trial of slot.
func (f Flag) Armed(slot contract.Slot) bool { return f.Slot == slot && !f.Booted }

const flagText = "# Cairn's trial flag for U-Boot's extlinux (agent/bootloader/extlinux).\n" +
	"# Overwritten in place at a fixed size: do not edit.\n"

// Render returns the flag's content: always contract.ExtlinuxTrialSize bytes.
func (f Flag) Render() []byte {
	var b bytes.Buffer
	b.WriteString(flagText)
	switch {
	case f.Slot == "":
		b.WriteString("trial=none\n")
	case f.Booted:
		fmt.Fprintf(&b, "trial=%s\nstate=booted\n", f.Slot)
	default:
		fmt.Fprintf(&b, "trial=%s\nstate=armed\n", f.Slot)
	}
	out, err := pad(b.Bytes(), contract.ExtlinuxTrialSize, "the trial flag")
	if err != nil {
		panic(err) // fixed text, far below a sector
	}
	return out
}

// ParseFlag reads the trial flag strictly: exactly
// contract.ExtlinuxTrialSize bytes of text, as Render writes it.
func ParseFlag(b []byte) (Flag, error) {
	name := contract.ExtlinuxTrialFile
	if err := checkFixed(name, b, contract.ExtlinuxTrialSize); err != nil {
		return Flag{}, err
	}
	var f Flag
	var trial, state string
	for i, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		switch {
		case k == "trial" && trial == "":
			trial = v
		case k == "state" && state == "":
			state = v
		default:
			return Flag{}, fmt.Errorf("%s:%d: %q is not a line Cairn writes (damaged: write it anew)", name, i+1, line)
		}
	}
	switch {
	case trial == "":
		return Flag{}, fmt.Errorf("%s: no trial= line (damaged: write it anew)", name)
	case trial != "none":
		s, err := contract.ParseSlot(trial)
		if err != nil {
			return Flag{}, fmt.Errorf("%s: trial=%s: %w", name, trial, err)
		}
		f.Slot = s
		f.Booted = state == "booted"
	}
	if !bytes.Equal(f.Render(), b) {
		return Flag{}, errors.New(name + ": not laid out as Cairn writes it (edited by hand? write it anew)")
	}
	return f, nil
}
