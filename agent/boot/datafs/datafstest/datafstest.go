// Package datafstest judges, for tests, a file system that datafs made,
// with e2fsprogs as the independent judge:
//
//	datafstest.Require(t) // skips without e2fsprogs, fails under CI
//	if err := datafstest.Clean(img); err != nil {
//		t.Error(err)
//	}
//
// img is a file holding the file system, or "disk.img?offset=N" for one
// that starts N bytes into a disk image (e2fsprogs' own syntax).
package datafstest

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent/contract"
)

// tools are the e2fsprogs programs used here.
var tools = []string{"e2fsck", "dumpe2fs", "debugfs"}

// Require skips the test when e2fsprogs is not installed, or fails it
// under CI (CI set), which must have it.
func Require(t testing.TB) {
	t.Helper()
	for _, name := range tools {
		if _, err := exec.LookPath(name); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is not installed: CI needs e2fsprogs (apt-get install e2fsprogs)", name)
			}
			t.Skipf("%s is not installed (apt-get install e2fsprogs)", name)
		}
	}
}

// fsckOK matches the lines of a clean `e2fsck -fn` run; any other line is
// a problem it found. A superblock time less than a day in this machine's
// future is not one: a guest's clock under QEMU drifts from the host's
// (e2fsck says so itself, and fixes nothing for it).
var fsckOK = regexp.MustCompile(`^(e2fsck \d.*|Pass \d[A-Z]?: .*|` + contract.DataFSLabel + `: \d+/\d+ files \(.*\), \d+/\d+ blocks|` +
	`Superblock last (write|mount) time is in the future\.|\s*\(by less than a day, probably due to the hardware clock being incorrectly set\))$`)

// superblockWant are the `dumpe2fs -h` fields of a clean file system as
// datafs makes it ("" for a field that must be absent).
var superblockWant = []struct{ field, want string }{
	{"Filesystem state", "clean"},
	{"FS Error count", ""},
	{"Errors behavior", "Remount read-only"},
	{"Maximum mount count", "-1"},
}

// Clean runs `e2fsck -fn` and `dumpe2fs -h` on img: e2fsck must exit 0 and
// print nothing but its passes and summary, and the superblock must be
// clean, with no errors recorded and datafs's settings in place.
func Clean(img string) error {
	name := filepath.Base(img)
	out, err := run("e2fsck", "-fn", img)
	if err != nil {
		return fmt.Errorf("e2fsck -fn %s: %v\n%s", name, err, out)
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if !fsckOK.MatchString(l) {
			return fmt.Errorf("e2fsck -fn %s found a problem: %q\n%s", name, l, out)
		}
	}
	out, err = run("dumpe2fs", "-h", img)
	if err != nil {
		return fmt.Errorf("dumpe2fs -h %s: %v\n%s", name, err, out)
	}
	fields := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			fields[k] = strings.TrimSpace(v)
		}
	}
	var bad []string
	for _, w := range superblockWant {
		if got := fields[w.field]; got != w.want {
			bad = append(bad, fmt.Sprintf("%s is %q, want %q", w.field, got, w.want))
		}
	}
	if bad != nil {
		return fmt.Errorf("dumpe2fs -h %s: %s", name, strings.Join(bad, "; "))
	}
	return nil
}

// Cat returns the contents of the file at path (absolute, inside the file
// system) with debugfs, without mounting img.
func Cat(img, path string) ([]byte, error) {
	cmd := exec.Command("debugfs", "-R", "cat "+path, img)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	// debugfs exits 0 when the file is missing: it says so on stderr.
	if msg := strings.TrimSpace(strings.TrimPrefix(stderr.String(), debugfsBanner(stderr.String()))); err != nil || msg != "" {
		return nil, fmt.Errorf("debugfs cat %s in %s: %v %s", path, filepath.Base(img), err, msg)
	}
	return out, nil
}

// debugfsBanner is debugfs's first stderr line ("debugfs 1.47.0 (…)").
func debugfsBanner(stderr string) string {
	if first, _, _ := strings.Cut(stderr, "\n"); strings.HasPrefix(first, "debugfs ") {
		return first
	}
	return ""
}

// UnzeroedGroups reads the ext4 at the start of r and counts its block
// groups whose descriptor lacks EXT4_BG_INODE_ZEROED: those the kernel's
// ext4lazyinit has not checked yet (datafs writes inode tables whole but
// leaves the flag to the kernel). It reads 4 KiB-block file systems only,
// as datafs makes them.
func UnzeroedGroups(r io.ReaderAt) (left, groups int, err error) {
	const (
		blockSize   = 4096
		inodeZeroed = 0x4
	)
	sb := make([]byte, 1024)
	if _, err := r.ReadAt(sb, 1024); err != nil {
		return 0, 0, fmt.Errorf("reading the superblock: %w", err)
	}
	le := binary.LittleEndian
	if le.Uint16(sb[0x38:]) != 0xEF53 || le.Uint32(sb[0x18:]) != 2 {
		return 0, 0, fmt.Errorf("no ext4 with 4 KiB blocks")
	}
	blocks, perGroup := uint64(le.Uint32(sb[0x4:])), uint64(le.Uint32(sb[0x20:]))
	descSize := uint64(32)
	if le.Uint32(sb[0x60:])&0x80 != 0 { // 64bit: the descriptor size is named
		blocks |= uint64(le.Uint32(sb[0x150:])) << 32
		descSize = uint64(le.Uint16(sb[0xFE:]))
	}
	if perGroup == 0 || descSize < 32 {
		return 0, 0, fmt.Errorf("superblock names %d blocks per group, %d-byte descriptors", perGroup, descSize)
	}
	n := (blocks + perGroup - 1) / perGroup
	gdt := make([]byte, n*descSize)
	if _, err := r.ReadAt(gdt, blockSize); err != nil {
		return 0, 0, fmt.Errorf("reading the group descriptors: %w", err)
	}
	for g := uint64(0); g < n; g++ {
		if le.Uint16(gdt[g*descSize+0x12:])&inodeZeroed == 0 {
			left++
		}
	}
	return left, int(n), nil
}

// run runs an e2fsprogs program and returns what it printed.
func run(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}
