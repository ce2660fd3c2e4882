// Package bootentry writes and reads the systemd-boot files of an A/B
// Cairn disk: loader/loader.conf and one Boot Loader Specification entry
// per slot, named cairn-<slot>[+<left>[-<done>]].conf. The "+left-done"
// suffix is systemd-boot's boot counting: it decrements left on every try
// and skips an entry whose left reached 0, falling back to the other slot.
package bootentry

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Entry is one slot's boot entry.
type Entry struct {
	// Slot is "a" or "b".
	Slot string
	// Title is shown in the boot menu.
	Title string
	// Version orders entries: systemd-boot prefers the highest.
	Version string
	// Linux and Initrd are paths on the ESP.
	Linux, Initrd string
	// Options is the kernel command line.
	Options string
	// Counting tells whether boot counting is on; Left and Done are its counters.
	Counting   bool
	Left, Done int
}

// Slots are the slot names.
var Slots = []string{"a", "b"}

// FileName is the entry's name under loader/entries/.
func (e Entry) FileName() string {
	switch {
	case !e.Counting:
		return fmt.Sprintf("cairn-%s.conf", e.Slot)
	case e.Done == 0:
		return fmt.Sprintf("cairn-%s+%d.conf", e.Slot, e.Left)
	default:
		return fmt.Sprintf("cairn-%s+%d-%d.conf", e.Slot, e.Left, e.Done)
	}
}

// Render returns the entry file's content.
func (e Entry) Render() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "title %s\n", e.Title)
	fmt.Fprintf(&b, "version %s\n", e.Version)
	fmt.Fprintf(&b, "linux %s\n", e.Linux)
	fmt.Fprintf(&b, "initrd %s\n", e.Initrd)
	fmt.Fprintf(&b, "options %s\n", e.Options)
	return b.Bytes()
}

// LoaderConf is loader/loader.conf: no menu, and the default is the highest
// version among the Cairn entries that still have tries left.
func LoaderConf() []byte {
	return []byte("timeout 0\ndefault cairn-*\nconsole-mode keep\neditor no\n")
}

// ParseFileName reads a slot and its boot counters from an entry file name.
func ParseFileName(name string) (Entry, error) {
	base, ok := strings.CutSuffix(name, ".conf")
	rest, ok2 := strings.CutPrefix(base, "cairn-")
	if !ok || !ok2 || rest == "" {
		return Entry{}, fmt.Errorf("boot entry %q is not named cairn-<slot>[+<left>[-<done>]].conf", name)
	}
	slot, counters, counting := strings.Cut(rest, "+")
	if slot != "a" && slot != "b" {
		return Entry{}, fmt.Errorf("boot entry %q names slot %q: want a or b", name, slot)
	}
	e := Entry{Slot: slot, Counting: counting}
	if !counting {
		return e, nil
	}
	left, done, hasDone := strings.Cut(counters, "-")
	var err error
	if e.Left, err = counter(left); err != nil {
		return Entry{}, fmt.Errorf("boot entry %q: %v", name, err)
	}
	if hasDone {
		if e.Done, err = counter(done); err != nil {
			return Entry{}, fmt.Errorf("boot entry %q: %v", name, err)
		}
	}
	return e, nil
}

func counter(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 1000 || strconv.Itoa(n) != s {
		return 0, fmt.Errorf("boot counter %q is not a small whole number", s)
	}
	return n, nil
}

// Parse reads an entry file's keys; unknown keys are kept out, as the spec
// allows other tools' keys.
func Parse(name string, data []byte) (Entry, error) {
	e, err := ParseFileName(name)
	if err != nil {
		return Entry{}, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, val, _ := strings.Cut(line, " ")
		val = strings.TrimSpace(val)
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
			e.Options = val
		}
	}
	if err := sc.Err(); err != nil {
		return Entry{}, fmt.Errorf("boot entry %s: %w", name, err)
	}
	if e.Linux == "" {
		return Entry{}, fmt.Errorf("boot entry %s has no linux line", name)
	}
	return e, nil
}
