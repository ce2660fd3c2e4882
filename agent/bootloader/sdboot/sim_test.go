package sdboot

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/contract"
)

// simBoot is systemd-boot 252 choosing an entry, written from its boot.c
// and independent of this package's code on purpose (it has its own name
// parser and version compare), so a mistake in sortEntries shows: it reads
// loader.conf's default pattern and the type #1 entries (skipping dot files,
// non-.conf files and entries whose kernel is missing), orders them (no
// tries left last, then the lowercased file name as a version, highest
// first), boots the first that matches the pattern and, if the entry counts
// tries, renames it with one try taken before it "starts the kernel" — as a
// write of the new name and a removal of the old, so that a power cut in
// between is simulated too. It returns the slot on the chosen entry's
// command line.
func simBoot(fsys bootloader.FS) (contract.Slot, error) {
	pattern := "*"
	if conf, err := fsys.ReadFile(contract.ESPLoaderConf); err == nil {
		for _, line := range strings.Split(string(conf), "\n") {
			if v, ok := strings.CutPrefix(line, "default "); ok {
				pattern = strings.ToLower(strings.TrimSpace(v))
			}
		}
	}
	names, err := fsys.ReadDir(contract.ESPEntriesDir)
	if err != nil {
		return "", err
	}
	type simEntry struct {
		name, id, options string
		left, done        int // -1: no counting
		base              string
	}
	var es []simEntry
	for _, name := range names {
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(strings.ToLower(name), ".conf") {
			continue
		}
		data, err := fsys.ReadFile(path.Join(contract.ESPEntriesDir, name))
		if err != nil {
			return "", err
		}
		e := simEntry{name: name, id: strings.ToLower(name), left: -1, done: -1}
		linux := ""
		for _, line := range strings.Split(string(data), "\n") {
			k, v, _ := strings.Cut(strings.TrimSpace(line), " ")
			switch k {
			case "linux":
				linux = strings.TrimPrefix(strings.TrimSpace(v), "/")
			case "options":
				e.options += " " + v
			}
		}
		if linux == "" {
			continue
		}
		if _, err := fsys.ReadFile(linux); err != nil {
			continue // boot.c: "check existence"
		}
		e.base, e.left, e.done = simTries(name)
		es = append(es, e)
	}
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if (a.left == 0) != (b.left == 0) {
			return b.left == 0
		}
		return simVerscmp(a.id, b.id) > 0
	})
	for _, e := range es {
		if ok, _ := path.Match(pattern, e.id); !ok {
			continue
		}
		if e.left >= 0 {
			next := fmt.Sprintf("%s+%d-%d.conf", e.base, max(e.left-1, 0), e.done+1)
			old := path.Join(contract.ESPEntriesDir, e.name)
			data, err := fsys.ReadFile(old)
			if err != nil {
				return "", err
			}
			if err := fsys.WriteFile(path.Join(contract.ESPEntriesDir, next), bytes.NewReader(data)); err != nil {
				return "", err
			}
			if err := fsys.Remove(old); err != nil {
				return "", err
			}
		}
		for _, o := range strings.Fields(e.options) {
			if s, ok := strings.CutPrefix(o, contract.SlotParam+"="); ok {
				return contract.ParseSlot(s)
			}
		}
		return "", fmt.Errorf("entry %s has no slot on its command line", e.name)
	}
	return "", errors.New("nothing to boot")
}

// simTries parses "+LEFT[-DONE]" before ".conf" as boot.c's
// config_entry_parse_tries does, from the end; left is -1 without counting.
func simTries(name string) (base string, left, done int) {
	stem := name[:len(name)-len(".conf")]
	i := strings.LastIndex(stem, "+")
	if i < 0 {
		return stem, -1, -1
	}
	l, d, hasDone := strings.Cut(stem[i+1:], "-")
	nl, err := strconv.Atoi(l)
	if err != nil || nl < 0 {
		return stem, -1, -1
	}
	nd := 0
	if hasDone {
		if nd, err = strconv.Atoi(d); err != nil || nd < 0 {
			return stem, -1, -1
		}
	}
	return stem[:i], nl, nd
}

// simVerscmp is systemd's strverscmp_improved for the characters our names
// use: characters other than letters, digits and "~-^." are skipped; a "-"
// or "." loses to anything else; a digit run beats a letter run; digit runs
// compare as numbers (leading zeros skipped), letter runs as strings; and
// at the end the longer string wins.
func simVerscmp(a, b string) int {
	valid := func(c byte) bool {
		return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || strings.IndexByte("~-^.", c) >= 0
	}
	digit := func(c byte) bool { return c >= '0' && c <= '9' }
	alpha := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	cmp := func(x, y int) int {
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	}
	for {
		for a != "" && !valid(a[0]) {
			a = a[1:]
		}
		for b != "" && !valid(b[0]) {
			b = b[1:]
		}
		if a == "" || b == "" {
			return cmp(len(a), len(b))
		}
		for _, sep := range []byte{'-', '.'} {
			if a[0] == sep || b[0] == sep {
				if r := cmp(btoi(a[0] != sep), btoi(b[0] != sep)); r != 0 {
					return r
				}
				a, b = a[1:], b[1:]
			}
		}
		if a == "" || b == "" {
			return cmp(len(a), len(b))
		}
		run := alpha
		if digit(a[0]) || digit(b[0]) {
			run = digit
		}
		i, j := 0, 0
		for i < len(a) && run(a[i]) {
			i++
		}
		for j < len(b) && run(b[j]) {
			j++
		}
		x, y := a[:i], b[:j]
		if run(a[0]) != run(b[0]) || i == 0 || j == 0 {
			// A digit run is newer than none.
			return cmp(i, j)
		}
		if digit(a[0]) {
			x, y = strings.TrimLeft(x, "0"), strings.TrimLeft(y, "0")
			if r := cmp(len(x), len(y)); r != 0 {
				return r
			}
		}
		if r := strings.Compare(x, y); r != 0 {
			return r
		}
		if r := cmp(len(x), len(y)); r != 0 {
			return r
		}
		a, b = a[i:], b[j:]
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// errCut is the power going off.
var errCut = errors.New("power cut")

// cutFS records an FS's mutations and cuts the power after a number of
// them: every later mutation fails with errCut and changes nothing, so the
// FS holds a prefix of the operation's mutations. left < 0 never cuts.
type cutFS struct {
	bootloader.FS
	left int
	log  []string
}

func (c *cutFS) mutate(what string) error {
	if c.left == 0 {
		return errCut
	}
	c.left--
	c.log = append(c.log, what)
	return nil
}

func (c *cutFS) WriteFile(name string, r io.Reader) error {
	if err := c.mutate("write " + name); err != nil {
		return err
	}
	return c.FS.WriteFile(name, r)
}

func (c *cutFS) Remove(name string) error {
	if err := c.mutate("remove " + name); err != nil {
		return err
	}
	return c.FS.Remove(name)
}
