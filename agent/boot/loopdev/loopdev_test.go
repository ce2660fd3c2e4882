package loopdev

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestAttach binds a file to a loop device and reads it back through the
// device; releasing it frees the device.
func TestAttach(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: loop devices need root (run the tests as root, as CI does)")
	}
	if _, err := os.Stat(Control); err != nil {
		t.Skipf("skipping: %v (modprobe loop)", err)
	}
	file := filepath.Join(t.TempDir(), "image")
	want := bytes.Repeat([]byte("cairn slot "), 4096) // 44 KiB: whole 512-byte sectors and a tail
	want = want[:len(want)/512*512]
	if err := os.WriteFile(file, want, 0o644); err != nil {
		t.Fatal(err)
	}
	dev, release, err := Attach(file)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(dev)
	if err != nil {
		release()
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s reads %d bytes, not the file's %d", dev, len(got), len(want))
	}
	if f, err := os.OpenFile(dev, os.O_WRONLY, 0); err == nil {
		_, werr := f.Write([]byte("x"))
		f.Close()
		if werr == nil {
			t.Errorf("%s is writable; want read-only", dev)
		}
	}
	release()
	if _, _, err := Attach(filepath.Join(t.TempDir(), "missing")); !os.IsNotExist(err) {
		t.Errorf("Attach of a missing file: %v", err)
	}
}
