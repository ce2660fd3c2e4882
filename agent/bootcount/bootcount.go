// Package bootcount keeps the number of boots on the data partition, so
// tests (and people) can tell a fresh box from one that kept its state.
package bootcount

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/cairn-edge/cairn/agent/atomicfile"
	"github.com/cairn-edge/cairn/agent/contract"
)

// Path is the counter file on the data partition, mounted at /var.
const Path = contract.BootCounter

// Parse reads a counter file's content: a decimal number and an optional
// newline. Empty content counts as zero boots.
func Parse(b []byte) (uint64, error) {
	s := strings.TrimSpace(string(b))
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("boot counter %q is not a number", trunc(s))
	}
	return n, nil
}

func trunc(s string) string {
	if len(s) > 24 {
		return s[:24] + "…"
	}
	return s
}

// Increment adds one to the counter at path and returns the new count. The
// new value is written to a temporary file, fsynced and renamed over the
// old one, and the directory is fsynced, so a power cut leaves either the
// old or the new count. A missing or corrupt file starts again at 1; the
// corruption is returned as a warning alongside the count.
func Increment(path string) (n uint64, warn error, err error) {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, nil, fmt.Errorf("reading boot counter: %w", err)
	}
	n, warn = Parse(old)
	n++
	if err := atomicfile.WriteFile(path, []byte(fmt.Sprintf("%d\n", n)), 0o644); err != nil {
		return 0, warn, fmt.Errorf("writing boot counter %s: %w", path, err)
	}
	return n, warn, nil
}
