package main

import (
	"context"
	"time"

	"github.com/cairn-edge/cairn/agent/boot/blockdev"
	"github.com/cairn-edge/cairn/agent/boot/cmdline"
	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/bootloader/extlinux"
	"github.com/cairn-edge/cairn/agent/contract"
	"golang.org/x/sys/unix"
)

// The trial revert of boards booted by U-Boot's extlinux, which counts no
// boots (agent/bootloader/extlinux): the trial's own stage 1 sets U-Boot's
// DEFAULT back on the committed slot before anything of the trial can
// hang, so that a hang, a watchdog reset or a power cut from here on
// boots the committed slot. Other boards' command lines lack
// contract.ExtlinuxParam, and this does nothing on them.

// extlinuxWait bounds the wait for the ESP: the slot's disk holds it, and
// a box that cannot find it boots on (the agent's Trial reverts then).
const extlinuxWait = 10 * time.Second

// extlinuxESP is where stage 1 mounts the ESP for the revert, and unmounts
// it after; a seam for tests.
var extlinuxESP = contract.ESPMount

// revertExtlinuxTrial runs extlinux.RevertTrial on the ESP when the
// kernel command line says U-Boot's extlinux booted slot. It never fails
// the boot: what goes wrong is a warning on the console.
func revertExtlinuxTrial(cl cmdline.Cmdline, slot contract.Slot) {
	if _, ok := cl.Get(contract.ExtlinuxParam); !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), extlinuxWait)
	p, err := blockdev.WaitPartition(ctx, contract.LabelESP)
	cancel()
	if err != nil {
		say("warning: extlinux: %v; a trial boot stays U-Boot's default until the agent sets it back (add the ESP's driver and vfat to the initramfs module list)", err)
		return
	}
	m := mountSpec{p.Path, extlinuxESP, "vfat", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "umask=0077,shortname=mixed"}
	if err := m.mount(); err != nil {
		say("warning: extlinux: %v; a trial boot stays U-Boot's default until the agent sets it back (is vfat with nls_cp437 and nls_ascii in the initramfs module list?)", err)
		return
	}
	defer func() {
		if err := unix.Unmount(extlinuxESP, 0); err != nil {
			log.Warn("unmounting the ESP", "err", err)
			_ = unix.Unmount(extlinuxESP, unix.MNT_DETACH)
		}
	}()
	revertOn(bootloader.DirFS(extlinuxESP), slot)
}

// revertOn reverts on the mounted ESP and says what it did.
func revertOn(esp extlinux.FS, slot contract.Slot) {
	r, err := extlinux.RevertTrial(esp, slot, log)
	switch {
	case err != nil:
		say("warning: extlinux: %v", err)
	case r.Trial != "":
		say("extlinux trial slot=%s: U-Boot's default is back on slot=%s until the upgrade commits", r.Trial, r.Default)
	}
}
