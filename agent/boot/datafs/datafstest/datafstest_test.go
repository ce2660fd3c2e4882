package datafstest_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent/boot/datafs"
	"github.com/cairn-edge/cairn/agent/boot/datafs/datafstest"
)

func TestCleanAndCat(t *testing.T) {
	datafstest.Require(t)
	dir := t.TempDir()
	const size = 32 << 20
	ours, theirs := filepath.Join(dir, "ours.img"), filepath.Join(dir, "theirs.img")
	for _, img := range []string{ours, theirs} {
		if err := os.WriteFile(img, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(img, size); err != nil {
			t.Fatal(err)
		}
	}
	if err := datafs.Format(ours, size); err != nil {
		t.Fatal(err)
	}
	if err := datafstest.Clean(ours); err != nil {
		t.Errorf("Clean(Format's) = %v", err)
	}
	f, err := os.Open(ours)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if left, groups, err := datafstest.UnzeroedGroups(f); err != nil || left != 1 || groups != 1 {
		t.Errorf("UnzeroedGroups(never mounted) = %d, %d, %v; want 1 of 1", left, groups, err)
	}
	// mkfs.ext4's defaults are not datafs's: the check must see it.
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-L", datafs.Label, theirs).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	if err := datafstest.Clean(theirs); err == nil || !strings.Contains(err.Error(), "Errors behavior") {
		t.Errorf("Clean(mkfs.ext4's) = %v, want the errors behaviour named", err)
	}

	src := filepath.Join(dir, "hello")
	if err := os.WriteFile(src, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("debugfs", "-w", "-R", "write "+src+" hello", ours).CombinedOutput(); err != nil {
		t.Fatalf("debugfs write: %v\n%s", err, out)
	}
	if got, err := datafstest.Cat(ours, "/hello"); err != nil || string(got) != "hello\n" {
		t.Errorf("Cat(/hello) = %q, %v", got, err)
	}
	if got, err := datafstest.Cat(ours, "/missing"); err == nil {
		t.Errorf("Cat(/missing) = %q, want an error", got)
	}
}
