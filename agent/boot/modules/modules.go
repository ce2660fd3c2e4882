// Package modules loads the kernel modules an image lists in
// /etc/cairn/modules: one module name per line, in load order, with '#'
// comments and blank lines allowed. Dependencies are resolved from
// /lib/modules/<uname -r>/modules.dep by u-root's kmodule.
package modules

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/u-root/u-root/pkg/kmodule"
)

// ListPath is where the builder writes the module list, in the initramfs
// (modules needed to reach the root slot) and in the slot (the rest).
const ListPath = contract.ModulesList

// maxSize bounds what ParseList reads.
const maxSize = 1 << 20

// ParseList reads a module list. A line holds one module name; text after
// '#' is a comment. Names may use '-' or '_' (the kernel treats them alike).
func ParseList(r io.Reader) ([]string, error) {
	var names []string
	sc := bufio.NewScanner(io.LimitReader(r, maxSize))
	n := 0
	for sc.Scan() {
		n++
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if !validName(line) {
			return nil, fmt.Errorf("module list line %d: %q is not a module name (one name per line, letters, digits, '-' and '_')", n, trunc(line))
		}
		names = append(names, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading module list: %w", err)
	}
	return names, nil
}

func validName(s string) bool {
	if len(s) > 64 { // MODULE_NAME_LEN is 64 including the NUL
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
		default:
			return false
		}
	}
	return true
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// probe loads one module and its dependencies; tests replace it.
var newProber = func() (func(name string) error, error) {
	p, err := kmodule.NewProber(kmodule.ProbeOpts{})
	if err != nil {
		return nil, err
	}
	return func(name string) error { return p.Probe(name, "") }, nil
}

// LoadList loads every module named in the list at path, in order. A
// missing list file loads nothing. It tries all modules and returns the
// joined errors of those that failed, so one bad name does not keep the
// others out; a module that is already loaded or built in is not an error.
func LoadList(path string) (loaded int, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	names, err := ParseList(f)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	if len(names) == 0 {
		return 0, nil
	}
	probe, err := newProber()
	if err != nil {
		return 0, fmt.Errorf("reading module dependencies (is modules.dep in /lib/modules/<uname -r>?): %w", err)
	}
	var errs []error
	for _, name := range names {
		if err := probe(name); err != nil {
			errs = append(errs, fmt.Errorf("module %s: %w", name, err))
			continue
		}
		loaded++
	}
	return loaded, errors.Join(errs...)
}
