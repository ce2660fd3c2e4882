// Package cmdline parses the kernel command line (/proc/cmdline) and reads
// the parameters cairn-init acts on.
//
// The command line comes from the boot loader entry and is untrusted input:
// Parse never panics and Slot validates what it returns.
//
//	c, err := cmdline.Parse(string(raw))
//	slot, err := c.Slot() // "a" or "b"
package cmdline

import (
	"fmt"
	"strings"

	"github.com/cairn-edge/cairn/agent/contract"
)

// SlotParam is the parameter that names the root slot to boot.
const SlotParam = contract.SlotParam

// maxLen bounds what Parse accepts; the kernel's own limit is a few KiB
// (COMMAND_LINE_SIZE is 2048 on x86 and arm64, 4096 on some arches).
const maxLen = 64 << 10

// Cmdline is a parsed kernel command line.
type Cmdline struct {
	params map[string]string
	order  []string
}

// Parse splits a kernel command line into parameters the way the kernel
// does: whitespace separates parameters, double quotes group spaces into a
// value (`k="a b"`), the first '=' separates key from value, and a later
// duplicate of a key wins. Everything after a bare "--" is for init's argv
// and is ignored here.
func Parse(s string) (Cmdline, error) {
	c := Cmdline{params: map[string]string{}}
	if len(s) > maxLen {
		return c, fmt.Errorf("kernel command line is %d bytes, more than the %d accepted (check the boot entry)", len(s), maxLen)
	}
	for _, tok := range split(s) {
		if tok == "--" {
			break
		}
		key, val, _ := strings.Cut(tok, "=")
		key = strings.ReplaceAll(key, `"`, "")
		val = strings.ReplaceAll(val, `"`, "")
		if key == "" {
			continue
		}
		if _, seen := c.params[key]; !seen {
			c.order = append(c.order, key)
		}
		c.params[key] = val
	}
	return c, nil
}

// split cuts s at whitespace outside double quotes.
func split(s string) []string {
	var toks []string
	var b strings.Builder
	quoted := false
	flush := func() {
		if b.Len() > 0 {
			toks = append(toks, b.String())
			b.Reset()
		}
	}
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
			b.WriteRune(r)
		case !quoted && (r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == 0):
			flush()
		default:
			b.WriteRune(r)
		}
	}
	flush()
	return toks
}

// Get returns the value of key and whether it was present. A flag without
// a value ("quiet") is present with the empty value.
func (c Cmdline) Get(key string) (string, bool) {
	v, ok := c.params[key]
	return v, ok
}

// Keys returns the parameter names in the order they first appeared.
func (c Cmdline) Keys() []string {
	return append([]string(nil), c.order...)
}

// Slot returns the slot named by cairn.slot, "a" or "b" (case is ignored).
// Anything else is an error that says how to fix the boot entry.
func (c Cmdline) Slot() (contract.Slot, error) {
	v, ok := c.params[SlotParam]
	if !ok {
		return "", fmt.Errorf("kernel command line has no %s= (add cairn.slot=a or cairn.slot=b to the boot entry)", SlotParam)
	}
	if s, err := contract.ParseSlot(v); err == nil {
		return s, nil
	}
	return "", fmt.Errorf("kernel command line has %s=%q, which is not a slot (use cairn.slot=a or cairn.slot=b in the boot entry)", SlotParam, truncate(v, 32))
}

// truncate keeps error messages readable when the input is hostile.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// RAMSlot says whether the slot comes from the initramfs (cairn.media=ram:
// a network boot) rather than from its partition (no cairn.media).
func (c Cmdline) RAMSlot() (bool, error) {
	v, ok := c.params[contract.MediaParam]
	if !ok {
		return false, nil
	}
	if v == contract.MediaRAM {
		return true, nil
	}
	return false, fmt.Errorf("kernel command line has %s=%q, which is not a boot medium (use %s, or leave it out to boot from the slot partition)", contract.MediaParam, truncate(v, 32), contract.MediaOption)
}
