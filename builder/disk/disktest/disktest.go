// Package disktest makes small Cairn disks for tests of what edits them.
package disktest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/builder/bmap"
	"github.com/cairn-edge/cairn/builder/disk"
	"github.com/cairn-edge/cairn/builder/fstree"
)

// Epoch stamps the FAT entries of the disks Image and Write make.
var Epoch = time.Unix(1e9, 0)

// Image writes a 64 MiB Cairn disk (an empty 40 MiB ESP, empty slots) in
// a temporary directory and returns its path.
func Image(t testing.TB) string {
	t.Helper()
	l, err := disk.Plan("amd64", "disktest", disk.Sizes{ESP: 40 << 20, Slot: 8 << 20, Data: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return Write(t, l, disk.Contents{FAT: map[string]*fstree.Tree{disk.LabelESP: fstree.New()}, Epoch: Epoch})
}

// Write writes the disk l with c (disk.Write) as edge.img in a temporary
// directory and returns its path.
func Write(t testing.TB, l disk.Layout, c disk.Contents) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "edge.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := disk.Write(f, l, c); err != nil {
		t.Fatal(err)
	}
	return path
}

// WriteBmap writes the block map of the image x.img beside it as x.bmap,
// as cairn build names it, and returns the map.
func WriteBmap(t testing.TB, img string) bmap.Map {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := bmap.Scan(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(strings.TrimSuffix(img, ".img")+".bmap", m.Encode(), 0o644); err != nil {
		t.Fatal(err)
	}
	return m
}
