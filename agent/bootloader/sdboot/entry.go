package sdboot

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/cairn-edge/cairn/agent/contract"
)

// Entry is one Boot Loader Specification type #1 entry of a slot: its file
// name's parts (generation, slot, boot counters) and its keys.
type Entry struct {
	// Gen orders the entries: systemd-boot sorts file names as versions,
	// newest first, and the generation is the name's first field. 0 is a
	// name without one, cairn-<slot>.conf, as images before generations
	// wrote; those sort after every generation.
	Gen uint64
	// Slot is the slot the entry boots.
	Slot contract.Slot
	// Counting tells whether the name carries boot counters: an armed
	// trial. Left is the tries left (systemd-boot takes one before it
	// starts the kernel), Done the tries taken.
	Counting   bool
	Left, Done int
	// Title is shown in the boot menu (there is none: timeout 0).
	Title string
	// Version is for people reading the ESP; it orders nothing, as no
	// entry has a sort-key.
	Version string
	// Linux and Initrd are absolute paths on the ESP; Initrd may be empty.
	Linux, Initrd string
	// Options is the kernel command line.
	Options string
}

// namePrefix starts every Cairn entry's file name; loaderConf's default
// pattern matches it.
const namePrefix = "cairn-"

// genWidth pads the generation so that a plain string sort orders the
// names as systemd-boot's version sort does (which skips leading zeros).
const genWidth = 8

// maxCounter bounds the boot counters read from a name.
const maxCounter = 1000

// FileName is the entry's name in contract.ESPEntriesDir:
// cairn-<gen>-<slot>[+<left>[-<done>]].conf.
func (e Entry) FileName() string {
	var b strings.Builder
	b.WriteString(namePrefix)
	if e.Gen > 0 {
		fmt.Fprintf(&b, "%0*d-", genWidth, e.Gen)
	}
	b.WriteString(string(e.Slot))
	if e.Counting {
		fmt.Fprintf(&b, "+%d", e.Left)
		if e.Done > 0 {
			fmt.Fprintf(&b, "-%d", e.Done)
		}
	}
	b.WriteString(".conf")
	return b.String()
}

// Exhausted tells whether systemd-boot considers the entry bad: a trial with
// no tries left, sorted after every other entry.
func (e Entry) Exhausted() bool { return e.Counting && e.Left == 0 }

// Render returns the entry file's content.
func (e Entry) Render() []byte {
	var b bytes.Buffer
	line := func(key, val string) {
		if val != "" {
			fmt.Fprintf(&b, "%s %s\n", key, val)
		}
	}
	line("title", e.Title)
	line("version", e.Version)
	line("linux", e.Linux)
	line("initrd", e.Initrd)
	line("options", e.Options)
	return b.Bytes()
}

// ParseFileName reads an entry file name's generation, slot and boot
// counters. It accepts only the names FileName writes, so that a name read
// back renders the same.
func ParseFileName(name string) (Entry, error) {
	base, ok := strings.CutSuffix(name, ".conf")
	rest, ok2 := strings.CutPrefix(base, namePrefix)
	if !ok || !ok2 || rest == "" {
		return Entry{}, fmt.Errorf("boot entry %q is not named %s<generation>-<slot>[+<left>[-<done>]].conf", name, namePrefix)
	}
	var e Entry
	if g, r, found := strings.Cut(rest, "-"); found && len(g) >= genWidth {
		n, err := strconv.ParseUint(g, 10, 64)
		if err != nil || n == 0 || fmt.Sprintf("%0*d", genWidth, n) != g {
			return Entry{}, fmt.Errorf("boot entry %q: generation %q is not a %d-digit number above 0", name, g, genWidth)
		}
		e.Gen, rest = n, r
	}
	slot, counters, counting := strings.Cut(rest, "+")
	s, err := contract.ParseSlot(slot)
	if err != nil || string(s) != slot {
		return Entry{}, fmt.Errorf("boot entry %q names slot %q: want a or b", name, slot)
	}
	e.Slot, e.Counting = s, counting
	if !counting {
		return e, nil
	}
	left, done, hasDone := strings.Cut(counters, "-")
	if e.Left, err = counter(left); err != nil {
		return Entry{}, fmt.Errorf("boot entry %q: %v", name, err)
	}
	if hasDone {
		// FileName leaves out "-0"; accepting it would not round-trip.
		if e.Done, err = counter(done); err != nil || e.Done == 0 {
			return Entry{}, fmt.Errorf("boot entry %q: tries done %q is not a small whole number above 0", name, done)
		}
	}
	return e, nil
}

func counter(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > maxCounter || strconv.Itoa(n) != s {
		return 0, fmt.Errorf("boot counter %q is not a small whole number", s)
	}
	return n, nil
}

// Parse reads an entry file: its name (ParseFileName) and its keys.
func Parse(name string, data []byte) (Entry, error) {
	e, err := ParseFileName(name)
	if err != nil {
		return Entry{}, err
	}
	if err := e.parseKeys(name, data); err != nil {
		return Entry{}, err
	}
	return e, nil
}

// parseKeys reads an entry's keys into e; keys of other tools are left out,
// as the specification allows them. where names the file in errors.
func (e *Entry) parseKeys(where string, data []byte) error {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, val := line, ""
		if i := strings.IndexAny(line, " \t"); i >= 0 {
			key, val = line[:i], strings.TrimSpace(line[i:])
		}
		switch key {
		case "title":
			e.Title = val
		case "version":
			e.Version = val
		case "linux":
			e.Linux = val
		case "initrd":
			e.Initrd = val
		case "options":
			// systemd-boot joins repeated options lines.
			e.Options = strings.TrimSpace(e.Options + " " + val)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("boot entry %s: %w", where, err)
	}
	if e.Linux == "" {
		return fmt.Errorf("boot entry %s has no linux line (install the slot again)", where)
	}
	return nil
}
