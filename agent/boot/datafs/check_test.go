package datafs

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/agent/boot/datafs/datafstest"
	"golang.org/x/sys/unix"
)

// checkClean has e2fsprogs judge img (see datafstest.Clean).
func checkClean(t *testing.T, img string) {
	t.Helper()
	datafstest.Require(t)
	if err := datafstest.Clean(img); err != nil {
		t.Error(err)
	}
}

// kernelLog follows the kernel's log (/dev/kmsg) from the moment it is
// opened.
type kernelLog struct{ fd int }

func openKernelLog() (*kernelLog, error) {
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if _, err := unix.Seek(fd, 0, unix.SEEK_END); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &kernelLog{fd}, nil
}

// lines returns the messages logged since the last call.
func (k *kernelLog) lines() []string {
	var out []string
	buf := make([]byte, 8192)
	for {
		n, err := unix.Read(k.fd, buf)
		if errors.Is(err, unix.EPIPE) { // records overwritten: read on
			continue
		}
		if err != nil || n <= 0 {
			return out
		}
		rec := buf[:n]
		if i := bytes.IndexByte(rec, ';'); i >= 0 {
			rec = rec[i+1:]
		}
		if i := bytes.IndexByte(rec, '\n'); i >= 0 {
			rec = rec[:i]
		}
		out = append(out, string(rec))
	}
}

func (k *kernelLog) close() { unix.Close(k.fd) }

// mountCheck has the kernel mount img on a loop device with /var's
// options, write a file and, unless settle is nil, wait with settle (given
// the loop device) before it unmounts it. The kernel must not say anything
// about the file system but that it mounted and unmounted it.
func mountCheck(t *testing.T, img string, settle func(t *testing.T, dev string)) {
	t.Helper()
	sb, err := ReadSuperblock(img)
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		t.Log("not root: the kernel's judgement (loop mount) skipped")
		return
	}
	klog, err := openKernelLog()
	if err != nil {
		t.Logf("cannot read the kernel log (%v): the kernel's judgement skipped", err)
		return
	}
	defer klog.close()
	var stderr strings.Builder
	cmd := exec.Command("losetup", "--find", "--show", img)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("losetup --find --show %s: %v\n%s", img, err, stderr.String())
	}
	loop := strings.TrimSpace(string(out))
	defer func() {
		if out, err := exec.Command("losetup", "-d", loop).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v\n%s", loop, err, out)
		}
	}()
	if stderr.Len() > 0 { // such as a file that is not whole sectors
		t.Fatalf("losetup --find --show %s: %s", img, stderr.String())
	}
	dir := t.TempDir()
	if err := unix.Mount(loop, dir, "ext4", MountFlags, MountData(sb)); err != nil {
		t.Fatalf("mounting %s (%s) with %q: %v", filepath.Base(img), loop, MountData(sb), err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hello"), []byte("hello\n"), 0o644); err != nil {
		t.Error(err)
	}
	if settle != nil {
		settle(t, loop)
	}
	if err := unmount(dir); err != nil {
		t.Fatalf("unmounting %s: %v", loop, err)
	}
	name := filepath.Base(loop)
	for _, l := range klog.lines() {
		if !strings.Contains(l, "("+name+")") && !strings.Contains(l, "(device "+name+")") {
			continue
		}
		if !strings.Contains(l, ": mounted filesystem") && !strings.Contains(l, ": unmounting filesystem") {
			t.Errorf("kernel on %s (%s): %s", filepath.Base(img), name, l)
		}
	}
}

// waitLazyInit waits until every group descriptor of the ext4 mounted from
// dev has EXT4_BG_INODE_ZEROED: ext4lazyinit, which starts up to 5 s after
// the mount, has checked its inode table. The descriptors are read through
// the device's page cache, where the kernel changes them.
func waitLazyInit(t *testing.T, dev string) {
	t.Helper()
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		left, groups, err := datafstest.UnzeroedGroups(f)
		switch {
		case err != nil:
			t.Fatalf("%s: %v", dev, err)
		case left == 0:
			return
		case time.Now().After(deadline):
			t.Errorf("%s: ext4lazyinit left %d of %d groups without INODE_ZEROED after 20 s", dev, left, groups)
			return
		}
	}
}

// sparseFile makes a file of size bytes, all holes, in a test directory.
func sparseFile(t *testing.T, size int64) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "data.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return img
}

// unmount unmounts dir, waiting out EBUSY for a few seconds: a process
// another parallel test forks holds a copy of every open descriptor until
// it execs, so a file just closed here can still be open there.
func unmount(dir string) error {
	for range 50 {
		if err := unix.Unmount(dir, 0); err != unix.EBUSY {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return unix.Unmount(dir, 0)
}
