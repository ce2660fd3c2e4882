package tryboot

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/cairn-edge/cairn/agent/contract"
)

// Autoboot is what autoboot.txt says.
type Autoboot struct {
	// Default is the slot whose partition [all]'s boot_partition names:
	// the committed slot, booted without the tryboot flag.
	Default contract.Slot
	// Trial is the slot whose partition [tryboot]'s boot_partition names,
	// booted with the flag. Cairn writes the other slot.
	Trial contract.Slot
}

// autobootBody is autoboot.txt before its padding.
const autobootBody = "[all]\ntryboot_a_b=1\nboot_partition=%d\n[tryboot]\nboot_partition=%d\n" +
	"# Cairn: [all] is the committed slot's boot partition (2 BOOT-A, 3 BOOT-B),\n" +
	"# [tryboot] the one that reboot \"0 tryboot\" tries. Overwritten in place\n" +
	"# at one size, padded with comment lines: keep its size if you edit it.\n"

// padLine is the longest padding line: well inside the firmware's line
// limit (98 characters, 78 on older firmware).
const padLine = 64

// Render is autoboot.txt's content: always contract.RPiAutobootSize bytes,
// padded with comment lines.
func (a Autoboot) Render() []byte {
	b := []byte(fmt.Sprintf(autobootBody, a.Default.RPiBootPartition(), a.Trial.RPiBootPartition()))
	for rem := contract.RPiAutobootSize - len(b); rem > 0; {
		n := min(rem, padLine)
		if rem-n == 1 {
			n-- // leave room for a line of its own, "\n"
		}
		b = append(b, strings.Repeat("#", n-1)+"\n"...)
		rem -= n
	}
	return b
}

// ParseAutoboot reads autoboot.txt strictly, since a cut or a worn card may
// have damaged it: at most contract.RPiAutobootSize bytes of printable
// text; an [all] section first with tryboot_a_b=1 and the boot_partition of
// a slot; a [tryboot] section with the boot_partition of a slot; comments
// and blank lines; nothing else (no other filter, key or repetition).
// Errors name the file and line.
func ParseAutoboot(b []byte) (Autoboot, error) {
	name := contract.RPiAutobootFile
	if len(b) > contract.RPiAutobootSize {
		return Autoboot{}, fmt.Errorf("%s: %d bytes, more than the %d the firmware reads (not written by Cairn: write it anew)", name, len(b), contract.RPiAutobootSize)
	}
	for i, c := range b {
		if c != '\n' && (c < ' ' || c > '~') {
			return Autoboot{}, fmt.Errorf("%s: byte %d is %#02x, not printable text (damaged: write it anew)", name, i, c)
		}
	}
	var (
		section string
		seen    = map[string]int{} // "section key" → line
		parts   = map[string]contract.Slot{}
	)
	for i, line := range strings.Split(string(b), "\n") {
		// No trimming: a space the firmware might read differently is
		// damage, as Render writes none.
		at := fmt.Sprintf("%s:%d", name, i+1)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		case strings.HasPrefix(line, "["):
			switch {
			case line == "[all]" && section == "":
				section = "all"
			case line == "[tryboot]" && section == "all":
				section = "tryboot"
			default:
				return Autoboot{}, fmt.Errorf("%s: section %q where Cairn writes [all], then [tryboot] (write it anew)", at, line)
			}
			continue
		case section == "":
			return Autoboot{}, fmt.Errorf("%s: %q before the [all] section (write it anew)", at, line)
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return Autoboot{}, fmt.Errorf("%s: %q is not key=value (damaged: write it anew)", at, line)
		}
		if first, dup := seen[section+" "+k]; dup {
			return Autoboot{}, fmt.Errorf("%s: %s set again in [%s] (first on line %d)", at, k, section, first)
		}
		seen[section+" "+k] = i + 1
		switch {
		case k == "tryboot_a_b" && section == "all":
			if v != "1" {
				return Autoboot{}, fmt.Errorf("%s: tryboot_a_b=%s; Cairn's A/B needs tryboot_a_b=1", at, v)
			}
		case k == "boot_partition":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return Autoboot{}, fmt.Errorf("%s: boot_partition=%q is not a partition number", at, v)
			}
			slot, ok := contract.RPiSlotOfPartition(uint32(n))
			if !ok {
				return Autoboot{}, fmt.Errorf("%s: boot_partition=%d is no slot's boot partition (%d: %s, %d: %s)", at, n,
					contract.SlotA.RPiBootPartition(), contract.SlotA.RPiBootLabel(), contract.SlotB.RPiBootPartition(), contract.SlotB.RPiBootLabel())
			}
			parts[section] = slot
		default:
			return Autoboot{}, fmt.Errorf("%s: %q in [%s] is not a key Cairn writes (write it anew)", at, k, section)
		}
	}
	if _, ok := seen["all tryboot_a_b"]; !ok {
		return Autoboot{}, fmt.Errorf("%s: no tryboot_a_b=1 in [all] (damaged or not Cairn's: write it anew)", name)
	}
	for _, s := range []string{"all", "tryboot"} {
		if _, ok := parts[s]; !ok {
			return Autoboot{}, fmt.Errorf("%s: no boot_partition in [%s] (damaged or not Cairn's: write it anew)", name, s)
		}
	}
	return Autoboot{Default: parts["all"], Trial: parts["tryboot"]}, nil
}
