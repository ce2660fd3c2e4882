package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/cairn-edge/cairn/agent/boot/blockdev"
	"github.com/cairn-edge/cairn/agent/boot/datafs"
	"github.com/cairn-edge/cairn/agent/boot/gptgrow"
	"github.com/cairn-edge/cairn/agent/boot/loopdev"
	"github.com/cairn-edge/cairn/agent/boot/switchroot"
	"github.com/cairn-edge/cairn/agent/contract"
	"golang.org/x/sys/unix"
)

const (
	newRoot  = "/newroot"
	slotInit = contract.Init
	// slotWait bounds the wait for the slot partition to appear.
	slotWait = 30 * time.Second
	// dataWait bounds the wait for the data partition once the slot's
	// disk is there: they share the disk, so it is short.
	dataWait = 5 * time.Second
)

// mountSpec is one filesystem to mount.
type mountSpec struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}

// mount mounts m, creating the target; already mounted counts as done.
func (m mountSpec) mount() error {
	if err := os.MkdirAll(m.target, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", m.target, err)
	}
	if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("mounting %s (%s) at %s: %w", m.source, m.fstype, m.target, err)
	}
	return nil
}

var stage1Mounts = []mountSpec{
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
	{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
}

func stage1() {
	for _, m := range stage1Mounts {
		if err := m.mount(); err != nil {
			fatal("%v (the kernel lacks proc, sysfs, devtmpfs or tmpfs; use a kernel built with them)", err)
		}
	}
	ensureConsole()

	modErr := loadModules("initramfs")
	cl := kernelCmdline()
	armWatchdog(cl) // before anything below can hang
	slot := bootSlot(cl)
	revertExtlinuxTrial(cl, slot) // U-Boot extlinux boards: a trial's DEFAULT back, before the slot can hang

	ram, err := cl.RAMSlot()
	if err != nil {
		fatal("%v", err)
	}
	if ram {
		mountRAMSlot(slot)
	} else {
		mountSlot(slot, modErr)
	}

	if err := switchroot.Switch(newRoot, slotInit, []string{slotInit}); err != nil {
		fatal("switching to slot %s: %v (the slot image lacks %s or is damaged; boot the other slot)", slot, err, slotInit)
	}
}

// mountSlot mounts the slot's partition at newRoot and CAIRN-DATA on its
// disk at /var.
func mountSlot(slot contract.Slot, modErr error) {
	label := slot.Label()
	ctx, cancel := context.WithTimeout(context.Background(), slotWait)
	part, err := blockdev.WaitPartition(ctx, label)
	cancel()
	if err != nil {
		hint := "attach the disk, or add its driver (e.g. virtio_blk, nvme, ahci) to the initramfs module list"
		if modErr != nil {
			hint += "; modules that failed to load: " + strings.ReplaceAll(modErr.Error(), "\n", "; ")
		}
		fatal("slot %s: %v (%s)", slot, err, hint)
	}
	log.Info("found slot", "slot", slot, "dev", part.Path)

	root := mountSpec{part.Path, newRoot, "squashfs", unix.MS_RDONLY | unix.MS_NODEV, ""}
	if err := root.mount(); err != nil {
		fatal("slot %s: %v (the slot image is damaged, empty or squashfs is not loaded; boot the other slot or reinstall)", slot, err)
	}

	if err := prepareData(part.Disk); err != nil {
		say("warning: data partition unusable: %v; /var is a tmpfs and nothing written there survives a reboot", err)
		mountVarTmpfs()
	}
}

// mountRAMSlot mounts the slot carried in the initramfs (a network boot)
// at newRoot, and a tmpfs at /var: the node has no disk of Cairn's.
func mountRAMSlot(slot contract.Slot) {
	dev, release, err := loopdev.Attach("/" + contract.RAMSlotFile)
	if err != nil {
		fatal("slot %s from RAM: %v (the boot server must hand out the bundle's %s as a second initrd, and the board's bootModules must hold %s)", slot, err, contract.NetbootSlotInitrd, contract.LoopModule)
	}
	log.Info("found slot", "slot", slot, "dev", dev, "media", contract.MediaRAM)
	root := mountSpec{dev, newRoot, "squashfs", unix.MS_RDONLY | unix.MS_NODEV, ""}
	err = root.mount()
	release()
	if err != nil {
		fatal("slot %s from RAM: %v (the slot image is damaged or squashfs is not loaded; rebuild the PXE bundle)", slot, err)
	}
	say("network boot: the slot runs from RAM and /var is a tmpfs, so nothing written there survives a reboot")
	mountVarTmpfs()
}

// mountVarTmpfs mounts a tmpfs at the new root's /var.
func mountVarTmpfs() {
	tmp := mountSpec{"tmpfs", newRoot + "/var", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"}
	if err := tmp.mount(); err != nil {
		fatal("mounting a tmpfs for /var: %v", err)
	}
}

// ensureConsole points stdin, stdout and stderr at /dev/console when the
// kernel could not (an initramfs without /dev/console).
func ensureConsole() {
	var st unix.Stat_t
	if unix.Fstat(1, &st) == nil {
		return
	}
	fd, err := unix.Open("/dev/console", unix.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return
	}
	for i := 0; i < 3; i++ {
		_ = unix.Dup2(fd, i)
	}
	if fd > 2 {
		unix.Close(fd)
	}
}

// prepareData finds CAIRN-DATA, grows it to the end of its disk, makes an
// ext4 on it when it is blank, mounts it at /newroot/var and grows the
// filesystem to the partition. An error means /var could not be mounted;
// problems that still leave a usable /var are only logged.
func prepareData(slotDisk string) error {
	ctx, cancel := context.WithTimeout(context.Background(), dataWait)
	data, err := blockdev.WaitPartition(ctx, contract.LabelData)
	cancel()
	if err != nil {
		return fmt.Errorf("%w (the disk needs a partition labeled %s)", err, contract.LabelData)
	}
	if data.Disk != slotDisk {
		log.Warn("data partition is on another disk than the slot", "data", data.Path, "slot disk", slotDisk)
	}

	if c, grown, err := gptgrow.Grow(data.Disk, contract.LabelData); err != nil {
		log.Warn("could not grow the data partition; using it as it is", "dev", data.Path, "err", err)
	} else if grown {
		log.Info("grew data partition to the end of the disk", "dev", data.Path,
			"from_mib", (c.OldEnd-c.Start+1)/2048, "to_mib", (c.NewEnd-c.Start+1)/2048)
	}
	size, err := blockdev.SizeBytes(data.Name)
	if err != nil {
		return err
	}

	kind, err := datafs.Probe(data.Path)
	if err != nil {
		return err
	}
	switch kind {
	case datafs.Unknown:
		return fmt.Errorf("%s (%s) holds data that is not ext4, so it was left untouched (to have it formatted on the next boot, zero its first MiB)", contract.LabelData, data.Path)
	case datafs.Blank, datafs.Unfinished:
		if kind == datafs.Unfinished {
			say("%s (%s) holds an ext4 whose making was cut off (the power went on an earlier boot): making it again", contract.LabelData, data.Path)
		}
		say("creating ext4 on %s (%s, %d MiB)", contract.LabelData, data.Path, size>>20)
		start := time.Now()
		if err := datafs.Format(data.Path, size); err != nil {
			return err
		}
		log.Info("created ext4", "dev", data.Path, "size_mib", size>>20, "took", time.Since(start).Round(time.Millisecond))
	}

	sb, err := datafs.ReadSuperblock(data.Path)
	if err != nil {
		return err
	}
	target := newRoot + "/var"
	m := mountSpec{data.Path, target, "ext4", datafs.MountFlags, datafs.MountData(sb)}
	if err := m.mount(); err != nil {
		return fmt.Errorf("%v (is ext4 in the initramfs module list? if the filesystem is damaged, run e2fsck on it)", err)
	}
	if oldSize, newSize, grown, err := datafs.GrowOnline(data.Path, target, uint64(size)); err != nil {
		log.Warn("could not grow the data filesystem; using it as it is", "err", err)
	} else if grown {
		log.Info("grew data filesystem", "dev", data.Path, "from_mib", oldSize>>20, "to_mib", newSize>>20)
	}
	return nil
}
