// Package disktest makes small Cairn disks for tests of what edits them.
package disktest

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/builder/disk"
	"github.com/cairn-edge/cairn/builder/fstree"
)

// Image writes a 64 MiB Cairn disk (an empty 40 MiB ESP, empty slots) in
// a temporary directory and returns its path.
func Image(t testing.TB) string {
	t.Helper()
	l, err := disk.Plan("amd64", "disktest", disk.Sizes{ESP: 40 << 20, Slot: 8 << 20, Data: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "edge.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := disk.Write(f, l, disk.Contents{FAT: map[string]*fstree.Tree{disk.LabelESP: fstree.New()}, Epoch: time.Unix(1e9, 0)}); err != nil {
		t.Fatal(err)
	}
	return path
}
