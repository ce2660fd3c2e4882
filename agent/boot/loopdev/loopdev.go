// Package loopdev attaches a file to a free loop device, read-only, so
// that a file system image (a network-booted node's slot, carried in its
// initramfs) can be mounted like a partition:
//
//	dev, release, err := loopdev.Attach("/slot.squashfs")
//	err = unix.Mount(dev, "/newroot", "squashfs", unix.MS_RDONLY, "")
//	release() // the mount keeps the device; it goes with the mount
package loopdev

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Control is the loop control device; a variable for tests.
var Control = "/dev/loop-control"

// nodeWait bounds the wait for devtmpfs to make a new loop device's node.
const nodeWait = 2 * time.Second

// Attach binds file, read-only, to a free loop device and returns the
// device's path and a release func to call once the device is mounted
// (or no longer wanted): the device detaches itself when the last user
// lets go (LO_FLAGS_AUTOCLEAR), so it never outlives its mount.
func Attach(file string) (dev string, release func(), err error) {
	f, err := os.Open(file)
	if err != nil {
		return "", nil, err
	}
	defer f.Close() // the loop device holds its own reference
	ctl, err := os.OpenFile(Control, os.O_RDWR, 0)
	if err != nil {
		return "", nil, fmt.Errorf("%w (is the loop module loaded?)", err)
	}
	defer ctl.Close()
	for range 8 { // another process may take the free device first
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return "", nil, fmt.Errorf("%s: finding a free loop device: %w", Control, err)
		}
		dev = fmt.Sprintf("/dev/loop%d", n)
		l, err := openNode(dev)
		if err != nil {
			return "", nil, err
		}
		cfg := unix.LoopConfig{Fd: uint32(f.Fd()), Info: unix.LoopInfo64{Flags: unix.LO_FLAGS_READ_ONLY | unix.LO_FLAGS_AUTOCLEAR}}
		copy(cfg.Info.File_name[:], file)
		err = unix.IoctlLoopConfigure(int(l.Fd()), &cfg)
		if errors.Is(err, unix.EBUSY) {
			l.Close()
			continue
		}
		if err != nil {
			l.Close()
			return "", nil, fmt.Errorf("%s: attaching %s: %w (the kernel needs LOOP_CONFIGURE, Linux 5.8 or later)", dev, file, err)
		}
		return dev, func() { l.Close() }, nil
	}
	return "", nil, fmt.Errorf("attaching %s: every free loop device was taken first", file)
}

// openNode opens a loop device, waiting for its node: LOOP_CTL_GET_FREE
// may have just made the device.
func openNode(dev string) (*os.File, error) {
	deadline := time.Now().Add(nodeWait)
	for {
		l, err := os.OpenFile(dev, os.O_RDONLY, 0)
		if err == nil || !errors.Is(err, os.ErrNotExist) || time.Now().After(deadline) {
			return l, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}
