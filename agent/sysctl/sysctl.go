// Package sysctl is an image's kernel settings: the file
// /etc/cairn/sysctl.conf in the slot, which the builder writes from the
// spec's sysctl section, cairn-init applies early in stage 2 (after the
// slot's modules are loaded, so their keys exist, and before any service
// starts) and the agent's status reads back from /proc/sys.
//
// The file has one "key = value" per line, keys in dotted form and sorted:
//
//	vm.min_free_kbytes = 8192
//	net.core.somaxconn = 1024
//
//	if err := sysctl.Apply("/proc/sys", settings); err != nil { … }
package sysctl

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/cairn-edge/cairn/agent/contract"
)

// Path is where the settings live in a slot image.
const Path = contract.SysctlFile

// ProcSys is where the kernel exposes its settings.
const ProcSys = "/proc/sys"

// Setting is one kernel setting.
type Setting struct {
	// Key is the dotted name, e.g. vm.min_free_kbytes.
	Key string
	// Value is written as given, e.g. "1" or "4096 131072 6291456".
	Value string
}

// keyRE is the key syntax we accept: a top-level directory of /proc/sys,
// then names of letters, digits, '_' and '-' joined by dots. It keeps a key
// inside /proc/sys (no "..", no '/', no empty part).
var keyRE = regexp.MustCompile(`^(abi|crypto|debug|dev|fs|kernel|net|user|vm)(\.[A-Za-z0-9_-]+)+$`)

// maxValue bounds a value; the kernel's own longest (core_pattern,
// modprobe) fit in 128 bytes, tables of numbers in far less than this.
const maxValue = 1024

// CheckKey reports whether key is a setting name we accept.
func CheckKey(key string) error {
	if !keyRE.MatchString(key) {
		return fmt.Errorf("sysctl key %q is not a kernel setting name: write it dotted as sysctl(8) does, under one of abi, crypto, debug, dev, fs, kernel, net, user, vm, e.g. vm.swappiness", key)
	}
	return nil
}

// CheckValue reports whether v can be written as a value: one line of
// printable text, not empty.
func CheckValue(key, v string) error {
	switch {
	case strings.TrimSpace(v) == "":
		return fmt.Errorf("sysctl %s has no value: give one as a string, e.g. %s: \"1\"", key, key)
	case len(v) > maxValue:
		return fmt.Errorf("sysctl %s: the value is %d bytes long; the kernel takes at most %d", key, len(v), maxValue)
	}
	for _, r := range v {
		if r < ' ' && r != '\t' || r == 0x7f {
			return fmt.Errorf("sysctl %s: the value %q holds a control character: give one line of text", key, v)
		}
	}
	return nil
}

// FromMap turns a key → value map (the spec's section) into settings sorted
// by key, so that builds are reproducible.
func FromMap(m map[string]string) []Setting {
	out := make([]Setting, 0, len(m))
	for k, v := range m {
		out = append(out, Setting{Key: k, Value: strings.TrimSpace(v)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// Format writes settings in the file's form.
func Format(settings []Setting) []byte {
	var b bytes.Buffer
	b.WriteString("# Kernel settings of this image (the spec's sysctl section); cairn-init applies them at boot.\n")
	for _, s := range settings {
		fmt.Fprintf(&b, "%s = %s\n", s.Key, s.Value)
	}
	return b.Bytes()
}

// Parse reads the file's form. Blank lines and lines starting with '#'
// are skipped; a line that is not "key = value" with a valid key is an
// error naming its line.
func Parse(data []byte) ([]Setting, error) {
	var out []Setting
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok {
			return nil, fmt.Errorf("%s:%d: %q is not \"key = value\" (rebuild the image)", Path, n, line)
		}
		if err := CheckKey(k); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", Path, n, err)
		}
		if err := CheckValue(k, v); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", Path, n, err)
		}
		out = append(out, Setting{Key: k, Value: v})
	}
	return out, sc.Err()
}

// Load reads and parses the file at path; a missing file is no settings.
func Load(path string) ([]Setting, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return Parse(b)
}

// File is the path of key's file under root (normally ProcSys).
func File(root, key string) string {
	return filepath.Join(root, filepath.FromSlash(strings.ReplaceAll(key, ".", "/")))
}

// Apply writes each setting under root (normally ProcSys) in order. It
// goes on past a failing setting and returns every failure joined, each
// naming the key and what to do.
func Apply(root string, settings []Setting) error {
	var errs []error
	for _, s := range settings {
		if err := CheckKey(s.Key); err != nil {
			errs = append(errs, err)
			continue
		}
		err := write(File(root, s.Key), s.Value)
		switch {
		case errors.Is(err, os.ErrNotExist):
			errs = append(errs, fmt.Errorf("sysctl %s: this kernel has no such setting (check the name; if a module provides it, add the module to kernel.modules)", s.Key))
		case err != nil:
			errs = append(errs, fmt.Errorf("sysctl %s = %q: %w (check the value against the kernel's documentation of the setting)", s.Key, s.Value, err))
		}
	}
	return errors.Join(errs...)
}

// write writes value to an existing file: /proc/sys cannot create one, and
// neither should a test's stand-in.
func write(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Read reads key's value under root, with the kernel's tabs between
// numbers turned into single spaces.
func Read(root, key string) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	b, err := os.ReadFile(File(root, key))
	if err != nil {
		return "", err
	}
	return strings.Join(strings.Fields(string(b)), " "), nil
}
