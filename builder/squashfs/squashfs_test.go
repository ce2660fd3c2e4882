package squashfs

import (
	"bytes"
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

func TestWriteReproducible(t *testing.T) {
	dir := t.TempDir()
	var images [][]byte
	for i := range 2 {
		out := filepath.Join(dir, "slot"+string(rune('0'+i)))
		if _, err := Write(testTree(t), out, time.Unix(1700000000, 0)); err != nil {
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
	if unsq, err := exec.LookPath("unsquashfs"); err == nil {
		list, err := exec.Command(unsq, "-lls", out).CombinedOutput()
		if err != nil {
			t.Fatalf("unsquashfs: %v\n%s", err, list)
		}
		for _, want := range []string{"-rwxr-xr-x root/root", "squashfs-root/sbin/init", "lrwxrwxrwx root/root", "squashfs-root/bin -> sbin"} {
			if !strings.Contains(string(list), want) {
				t.Errorf("unsquashfs -lls lacks %q:\n%s", want, list)
			}
		}
	}
}

func TestWriteDanglingSymlink(t *testing.T) {
	tr := fstree.New()
	tr.Symlink("etc/localtime", "/nonexistent/cairn/zone")
	_, err := Write(tr, filepath.Join(t.TempDir(), "slot"), time.Unix(0, 0))
	if err == nil || !strings.Contains(err.Error(), "does not exist at build time") {
		t.Fatalf("Write error = %v, want the dangling-link explanation", err)
	}
}
