package extlinux

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/cairn-edge/cairn/agent/contract"
)

// Conf is contract.ExtlinuxConf as Cairn writes it: a header sector
// naming the DEFAULT label, then one sector per slot holding its LABEL,
// or only comments when the slot has none.
type Conf struct {
	// Default is the slot whose label DEFAULT names: the slot U-Boot
	// boots next.
	Default contract.Slot
	// Labels are the slots' labels. A slot missing from the map (not
	// installed, being installed, marked bad) has no LABEL, so that
	// neither DEFAULT nor U-Boot's fallback to the other labels boots it.
	Labels map[contract.Slot]Label
}

// Label is one slot's LABEL section.
type Label struct {
	// Title and Version are comments, for people reading the partition
	// (no MENU LABEL: see the package doc).
	Title, Version string
	// Kernel, Initrd and FDT are absolute paths on the ESP (LINUX,
	// INITRD, FDT); Initrd and FDT may be empty.
	Kernel, Initrd, FDT string
	// Append is the kernel command line (APPEND).
	Append string
}

// labelName is slot's LABEL name, which DEFAULT names.
func labelName(slot contract.Slot) string { return "cairn-" + string(slot) }

// timeout is the TIMEOUT written, in tenths of a second. U-Boot ignores it
// unless a prompt is asked for (sysboot -p at the console, or a top-level
// MENU line, which Cairn never writes); then it shows the labels and waits
// this long for the first key before it boots DEFAULT. TIMEOUT 0 would
// wait forever.
const timeout = 50

const headerText = "# Cairn's A/B boot menu for U-Boot's extlinux (agent/bootloader/extlinux).\n" +
	"# Overwritten in place at a fixed size, one part per 512-byte sector:\n" +
	"# do not edit. DEFAULT is the slot U-Boot boots; a trial's cairn-init\n" +
	"# sets it back to the committed slot early in the trial boot.\n"

// padLine is the longest padding line.
const padLine = 64

// pad fills b with comment lines to exactly size bytes, ending in a
// newline; what is too long for size is an error.
func pad(b []byte, size int, what string) ([]byte, error) {
	if len(b) > size {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d it has on the ESP", what, len(b), size)
	}
	out := append(make([]byte, 0, size), b...)
	for rem := size - len(b); rem > 0; {
		n := min(rem, padLine)
		out = append(out, strings.Repeat("#", n-1)+"\n"...)
		rem -= n
	}
	return out, nil
}

// Render returns the file's content: always contract.ExtlinuxConfSize
// bytes. A label too long for its sector (RenderLabel refuses it at
// install) is an error.
func (c Conf) Render() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(headerText)
	fmt.Fprintf(&b, "TIMEOUT %d\nDEFAULT %s\n", timeout, labelName(c.Default))
	out, err := pad(b.Bytes(), contract.ExtlinuxSector, "the header")
	if err != nil {
		return nil, err
	}
	for _, s := range contract.Slots {
		sector, err := renderSector(s, c.Labels[s], c.hasLabel(s))
		if err != nil {
			return nil, err
		}
		out = append(out, sector...)
	}
	return out, nil
}

func (c Conf) hasLabel(s contract.Slot) bool {
	_, ok := c.Labels[s]
	return ok
}

// withDefault and withLabel return a copy of c with one part changed:
// each write of the file changes one sector.
func (c Conf) withDefault(s contract.Slot) Conf {
	c.Labels = cloneLabels(c.Labels)
	c.Default = s
	return c
}

func (c Conf) withLabel(s contract.Slot, l *Label) Conf {
	c.Labels = cloneLabels(c.Labels)
	if l == nil {
		delete(c.Labels, s)
	} else {
		c.Labels[s] = *l
	}
	return c
}

func cloneLabels(m map[contract.Slot]Label) map[contract.Slot]Label {
	out := map[contract.Slot]Label{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// RenderLabel returns slot's label sector, as contract.ExtlinuxConf holds
// it and as the slot's stamp (contract.ExtlinuxStampName) keeps it. A label
// that does not fit its sector is an error naming what to shorten.
func RenderLabel(slot contract.Slot, l Label) ([]byte, error) {
	return renderSector(slot, l, true)
}

func renderSector(slot contract.Slot, l Label, has bool) ([]byte, error) {
	var b bytes.Buffer
	if !has {
		fmt.Fprintf(&b, "# Slot %s has no label: it is not installed, or being installed, or marked bad.\n", slot)
		return pad(b.Bytes(), contract.ExtlinuxSector, "the empty label")
	}
	fmt.Fprintf(&b, "LABEL %s\n", labelName(slot))
	if l.Title != "" {
		fmt.Fprintf(&b, "  # title: %s\n", l.Title)
	}
	if l.Version != "" {
		fmt.Fprintf(&b, "  # version: %s\n", l.Version)
	}
	fmt.Fprintf(&b, "  LINUX %s\n", l.Kernel)
	if l.Initrd != "" {
		fmt.Fprintf(&b, "  INITRD %s\n", l.Initrd)
	}
	if l.FDT != "" {
		fmt.Fprintf(&b, "  FDT %s\n", l.FDT)
	}
	fmt.Fprintf(&b, "  APPEND %s\n", l.Append)
	return pad(b.Bytes(), contract.ExtlinuxSector, fmt.Sprintf("slot %s's label (its command line is %d bytes, its title %d)", slot, len(l.Append), len(l.Title)))
}

// checkFixed checks a file Cairn writes at one size: exactly size bytes
// of text (checkText).
func checkFixed(name string, b []byte, size int) error {
	if len(b) != size {
		return fmt.Errorf("%s: %d bytes, not the %d Cairn writes (not Cairn's, or damaged: write it anew)", name, len(b), size)
	}
	return checkText(name, b)
}

// checkText refuses what is not printable ASCII text with newlines: a cut
// or a worn card may have damaged the file, and nothing Cairn writes holds
// anything else.
func checkText(name string, b []byte) error {
	for i, c := range b {
		if c != '\n' && (c < ' ' || c > '~') {
			return fmt.Errorf("%s: byte %d is %#02x, not printable text (damaged: write it anew)", name, i, c)
		}
	}
	return nil
}

// ParseConf reads contract.ExtlinuxConf strictly, since a cut or a worn
// card may have damaged it: exactly contract.ExtlinuxConfSize bytes of
// text, laid out as Render writes it (the result renders to the same
// bytes). Errors name the file and line.
func ParseConf(b []byte) (Conf, error) {
	name := contract.ExtlinuxConf
	if err := checkFixed(name, b, contract.ExtlinuxConfSize); err != nil {
		return Conf{}, err
	}
	c := Conf{Labels: map[contract.Slot]Label{}}
	sectors := contract.ExtlinuxConfSize / contract.ExtlinuxSector
	for i := 0; i < sectors; i++ {
		sector := b[i*contract.ExtlinuxSector : (i+1)*contract.ExtlinuxSector]
		line0 := bytes.Count(b[:i*contract.ExtlinuxSector], []byte("\n"))
		if i == 0 {
			d, err := parseHeader(sector)
			if err != nil {
				return Conf{}, fmt.Errorf("%s: %w", name, err)
			}
			c.Default = d
			continue
		}
		slot := contract.Slots[i-1]
		l, has, err := parseSector(slot, sector)
		if err != nil {
			return Conf{}, fmt.Errorf("%s: %w", name, lineErr(err, line0))
		}
		if has {
			c.Labels[slot] = l
		}
	}
	if r, err := c.Render(); err != nil || !bytes.Equal(r, b) {
		return Conf{}, fmt.Errorf("%s: not laid out as Cairn writes it (edited by hand? write it anew)", name)
	}
	return c, nil
}

// lineError is a parse error on a line of a sector.
type lineError struct {
	line int // 1-based, in the sector
	msg  string
}

func (e *lineError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

// lineErr shifts a sector's line error to the file's line numbers.
func lineErr(err error, offset int) error {
	var le *lineError
	if errors.As(err, &le) {
		return &lineError{le.line + offset, le.msg}
	}
	return err
}

// parseHeader reads the header sector's DEFAULT.
func parseHeader(sector []byte) (contract.Slot, error) {
	var def contract.Slot
	for i, line := range strings.Split(string(sector), "\n") {
		if v, ok := strings.CutPrefix(line, "DEFAULT "); ok {
			s, ok := slotOfLabel(v)
			if !ok || def != "" {
				return "", &lineError{i + 1, fmt.Sprintf("%q: want one DEFAULT naming %s or %s", line, labelName(contract.SlotA), labelName(contract.SlotB))}
			}
			def = s
		}
	}
	if def == "" {
		return "", errors.New("no DEFAULT line in the header (damaged: write it anew)")
	}
	return def, nil
}

func slotOfLabel(name string) (contract.Slot, bool) {
	for _, s := range contract.Slots {
		if name == labelName(s) {
			return s, true
		}
	}
	return "", false
}

// ParseLabel reads slot's label sector (a stamp, or a part of
// contract.ExtlinuxConf): exactly one sector, as RenderLabel writes it.
func ParseLabel(slot contract.Slot, sector []byte) (Label, error) {
	if err := checkFixed("the label", sector, contract.ExtlinuxSector); err != nil {
		return Label{}, err
	}
	l, has, err := parseSector(slot, sector)
	if err != nil {
		return Label{}, err
	}
	if !has {
		return Label{}, fmt.Errorf("slot %s has no label there", slot)
	}
	if b, _ := RenderLabel(slot, l); !bytes.Equal(b, sector) {
		return Label{}, errors.New("not laid out as Cairn writes it")
	}
	return l, nil
}

// parseSector reads a label sector; has is false for a sector of
// comments only. The caller checks that it renders back to the same bytes.
func parseSector(slot contract.Slot, sector []byte) (l Label, has bool, err error) {
	keys := map[string]*string{
		"  # title: ": &l.Title, "  # version: ": &l.Version,
		"  LINUX ": &l.Kernel, "  INITRD ": &l.Initrd, "  FDT ": &l.FDT, "  APPEND ": &l.Append,
	}
	seen := map[string]bool{}
	for i, line := range strings.Split(string(sector), "\n") {
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		case strings.HasPrefix(line, "LABEL "):
			if has || i != 0 || line != "LABEL "+labelName(slot) {
				return Label{}, false, &lineError{i + 1, fmt.Sprintf("%q where slot %s's sector starts with LABEL %s", line, slot, labelName(slot))}
			}
			has = true
			continue
		case !has:
			return Label{}, false, &lineError{i + 1, fmt.Sprintf("%q before the LABEL line", line)}
		}
		matched := false
		for prefix, dst := range keys {
			if v, ok := strings.CutPrefix(line, prefix); ok {
				if seen[prefix] {
					return Label{}, false, &lineError{i + 1, fmt.Sprintf("%q: given twice", line)}
				}
				seen[prefix], *dst, matched = true, v, true
			}
		}
		if !matched {
			return Label{}, false, &lineError{i + 1, fmt.Sprintf("%q is not a line Cairn writes in a label", line)}
		}
	}
	if has && (l.Kernel == "" || !seen["  APPEND "]) {
		return Label{}, false, fmt.Errorf("slot %s's label has no LINUX or APPEND line", slot)
	}
	return l, has, nil
}
