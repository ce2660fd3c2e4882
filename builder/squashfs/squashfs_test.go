package squashfs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/builder/fstree"
	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/squashfs"
)

func testTree(t *testing.T) *fstree.Tree {
	t.Helper()
	tr := fstree.New()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(tr.File("sbin/init", 0o755, bytes.Repeat([]byte("init"), 100000)))
	must(tr.File("etc/cairn/release", 0o644, []byte("VERSION=1.0.0\n")))
	must(tr.Dir("var", 0o755))
	must(tr.Symlink("bin", "sbin"))
	return tr
}

// random returns n bytes that do not compress, the same for the same seed.
func random(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// text returns n bytes that compress, varying with seed.
func text(seed, n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "line %d of file %d: the quick brown fox\n", i, seed)
	}
	return b.Bytes()[:n]
}

// richTree holds what an image can hold: files at and around the block
// size, empty and incompressible files, a directory long enough for
// several listing runs and metadata blocks, long names, deep paths, empty
// directories and symlinks, including one that points nowhere.
func richTree(t *testing.T) *fstree.Tree {
	t.Helper()
	tr := fstree.New()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for i, n := range []int{0, 1, blockSize - 1, blockSize, blockSize + 1, 3*blockSize + 17} {
		must(tr.File(fmt.Sprintf("sizes/text-%d", n), 0o644, text(i, n)))
		must(tr.File(fmt.Sprintf("sizes/random-%d", n), 0o600, random(uint64(i), n)))
	}
	for i := range 600 {
		must(tr.File(fmt.Sprintf("many/entry-%04d", i), 0o444, []byte(fmt.Sprint(i))))
	}
	must(tr.File("names/"+strings.Repeat("n", 255), 0o644, []byte("long")))
	must(tr.File("a/b/c/d/e/f/g/h/deep", 0o755, []byte("#!/bin/sh\n")))
	must(tr.Dir("empty/dir", 0o700))
	must(tr.Symlink("links/relative", "../sizes/text-1"))
	must(tr.Symlink("links/absolute", "/usr/bin/cairn-agent"))
	must(tr.Symlink("links/dangling", "/run/cairn/net.d"))
	return tr
}

func TestWriteReproducible(t *testing.T) {
	dir := t.TempDir()
	var images [][]byte
	for i := range 2 {
		out := filepath.Join(dir, "slot"+string(rune('0'+i)))
		if _, err := Write(richTree(t), out, time.Unix(1700000000, 0)); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(out)
		images = append(images, b)
		time.Sleep(1100 * time.Millisecond) // a clock leak would show
	}
	if !bytes.Equal(images[0], images[1]) {
		t.Fatal("two writes of the same tree differ")
	}
}

func TestWriteReadBack(t *testing.T) {
	out := filepath.Join(t.TempDir(), "slot")
	size, err := Write(testTree(t), out, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if size%padTo != 0 {
		t.Errorf("size %d is not a multiple of %d", size, padTo)
	}
	f, _ := os.Open(out)
	defer f.Close()
	fs, err := squashfs.Read(file.New(f, true), size, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := fs.ReadFile("etc/cairn/release")
	if err != nil || string(got) != "VERSION=1.0.0\n" {
		t.Fatalf("release = %q, %v", got, err)
	}
	if got, err := fs.ReadFile("sbin/init"); err != nil || !bytes.Equal(got, bytes.Repeat([]byte("init"), 100000)) {
		t.Fatalf("sbin/init: %d bytes, %v", len(got), err)
	}
	if unsq, err := exec.LookPath("unsquashfs"); err == nil {
		list, err := exec.Command(unsq, "-lls", out).CombinedOutput()
		if err != nil {
			t.Fatalf("unsquashfs: %v\n%s", err, list)
		}
		for _, want := range []string{"-rwxr-xr-x root/root", "squashfs-root/sbin/init", "lrwxrwxrwx root/root", "squashfs-root/bin -> sbin", "1970-01-01 00:00"} {
			if !strings.Contains(string(list), want) {
				t.Errorf("unsquashfs -lls lacks %q:\n%s", want, list)
			}
		}
	}
}

// TestUnsquashfs extracts the rich tree with squashfs-tools, the
// reference reader, and compares every entry with what went in.
func TestUnsquashfs(t *testing.T) {
	unsq, err := exec.LookPath("unsquashfs")
	if err != nil {
		t.Skip("unsquashfs is not installed (make deps installs it)")
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "slot")
	epoch := time.Unix(1704067200, 0)
	tr := richTree(t)
	if _, err := Write(tr, img, epoch); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	if out, err := exec.Command(unsq, "-no-xattrs", "-d", root, img).CombinedOutput(); err != nil {
		t.Fatalf("unsquashfs: %v\n%s", err, out)
	}
	seen := 0
	for _, e := range tr.Entries() {
		p := filepath.Join(root, filepath.FromSlash(e.Path))
		st, err := os.Lstat(p)
		if err != nil {
			t.Errorf("%s: %v", e.Path, err)
			continue
		}
		seen++
		if st.Mode() != e.Mode {
			t.Errorf("%s: mode %v, want %v", e.Path, st.Mode(), e.Mode)
		}
		switch {
		case e.Mode.IsRegular():
			got, _ := os.ReadFile(p)
			if !bytes.Equal(got, e.Data) {
				t.Errorf("%s: %d bytes differ from the %d written", e.Path, len(got), len(e.Data))
			}
			if !st.ModTime().Equal(epoch) {
				t.Errorf("%s: mtime %v, want %v", e.Path, st.ModTime(), epoch)
			}
		case e.Mode&os.ModeSymlink != 0:
			if got, _ := os.Readlink(p); got != e.Target {
				t.Errorf("%s: target %q, want %q", e.Path, got, e.Target)
			}
		}
	}
	// Nothing more came out than went in.
	extra := 0
	filepath.Walk(root, func(string, os.FileInfo, error) error { extra++; return nil })
	if extra-1 != seen {
		t.Errorf("unsquashfs extracted %d entries, the tree has %d", extra-1, seen)
	}
	// Its own consistency checks: the superblock and tables, listed.
	if out, err := exec.Command(unsq, "-s", img).CombinedOutput(); err != nil || !strings.Contains(string(out), "Fragments are not stored") {
		t.Errorf("unsquashfs -s: %v\n%s", err, out)
	}
}

// image writes tr and returns the image and its planned nodes by path.
func image(t *testing.T, tr *fstree.Tree) ([]byte, map[string]*node) {
	t.Helper()
	root, err := plan(tr)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "slot"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := write(f, root, 0); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(f.Name())
	nodes := map[string]*node{}
	walk(root, func(n *node) error {
		if n.entry != nil {
			nodes[n.entry.Path] = n
		}
		return nil
	})
	return b, nodes
}

// stored is a file's data blocks as they are in the image.
func stored(b []byte, n *node) []byte {
	end := n.start
	for _, s := range n.sizes {
		end += uint64(s &^ blockUncompressed)
	}
	return b[n.start:end]
}

// TestLayoutLocal checks what delta downloads rely on: a file whose
// content and length change leaves every other file's stored bytes as
// they were, only moved, and the metadata after all the data.
func TestLayoutLocal(t *testing.T) {
	before := richTree(t)
	after := richTree(t)
	changed := "sizes/text-131071"
	if err := after.File(changed, 0o644, append(text(2, 1000), text(9, blockSize+500)...)); err != nil {
		t.Fatal(err)
	}
	a, an := image(t, before)
	b, bn := image(t, after)
	for p, n := range an {
		if !n.mode.IsRegular() || p == changed {
			continue
		}
		if !bytes.Equal(stored(a, n), stored(b, bn[p])) {
			t.Errorf("%s: stored bytes changed when only %s did", p, changed)
		}
	}
	var end uint64
	for _, n := range bn {
		if n.mode.IsRegular() {
			end = max(end, n.start+uint64(len(stored(b, n))))
		}
	}
	var sb superblock
	if err := binaryRead(b, &sb); err != nil {
		t.Fatal(err)
	}
	if sb.InodeTable != end {
		t.Errorf("inode table at %d, want right after the data at %d", sb.InodeTable, end)
	}
}

// TestIncompressibleStoredAsIs: blocks that compression barely shrinks
// hold the file's own bytes.
func TestIncompressibleStoredAsIs(t *testing.T) {
	tr := fstree.New()
	data := random(7, 2*blockSize+100)
	if err := tr.File("layer.tar.gz", 0o644, data); err != nil {
		t.Fatal(err)
	}
	if err := tr.File("notes.txt", 0o644, text(1, 2*blockSize)); err != nil {
		t.Fatal(err)
	}
	b, nodes := image(t, tr)
	layer := nodes["layer.tar.gz"]
	if len(layer.sizes) != 3 {
		t.Fatalf("layer has %d blocks, want 3 (no fragment)", len(layer.sizes))
	}
	for i, s := range layer.sizes {
		if s&blockUncompressed == 0 {
			t.Errorf("layer block %d is compressed (size %d)", i, s)
		}
	}
	if !bytes.Equal(stored(b, layer), data) {
		t.Error("the layer's stored bytes are not the layer")
	}
	for i, s := range nodes["notes.txt"].sizes {
		if s&blockUncompressed != 0 {
			t.Errorf("text block %d is stored uncompressed", i)
		}
	}
}

func TestWriteDanglingSymlink(t *testing.T) {
	tr := fstree.New()
	tr.Symlink("etc/localtime", "/nonexistent/cairn/zone")
	out := filepath.Join(t.TempDir(), "slot")
	if _, err := Write(tr, out, time.Unix(0, 0)); err != nil {
		t.Fatalf("Write: %v (a link may point at what only exists at run time)", err)
	}
	if unsq, err := exec.LookPath("unsquashfs"); err == nil {
		list, _ := exec.Command(unsq, "-lls", out).CombinedOutput()
		if !strings.Contains(string(list), "squashfs-root/etc/localtime -> /nonexistent/cairn/zone") {
			t.Errorf("unsquashfs -lls:\n%s", list)
		}
	}
}

func TestWriteRefusesLongName(t *testing.T) {
	tr := fstree.New()
	tr.File(strings.Repeat("x", 257), 0o644, nil)
	_, err := Write(tr, filepath.Join(t.TempDir(), "slot"), time.Unix(0, 0))
	if err == nil || !strings.Contains(err.Error(), "at most 256") {
		t.Fatalf("Write error = %v, want the name limit", err)
	}
}

func binaryRead(b []byte, sb *superblock) error {
	return binary.Read(bytes.NewReader(b), binary.LittleEndian, sb)
}
