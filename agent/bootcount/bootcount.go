// Package bootcount keeps the number of boots on the data partition, so
// tests (and people) can tell a fresh box from one that kept its state.
package bootcount

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Path is the counter file on the data partition, mounted at /var.
const Path = "/var/lib/cairn/boots"

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
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return 0, nil, fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, nil, fmt.Errorf("reading boot counter: %w", err)
	}
	n, warn = Parse(old)
	n++
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, warn, fmt.Errorf("writing boot counter: %w", err)
	}
	_, err = fmt.Fprintf(f, "%d\n", n)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return 0, warn, fmt.Errorf("writing boot counter %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return 0, warn, fmt.Errorf("syncing %s: %w", filepath.Dir(path), err)
		}
	}
	return n, warn, nil
}
