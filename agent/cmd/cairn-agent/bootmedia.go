package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"

	"github.com/cairn-edge/cairn/agent/boot/blockdev"
	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/bootloader/extlinux"
	"github.com/cairn-edge/cairn/agent/bootloader/sdboot"
	"github.com/cairn-edge/cairn/agent/bootloader/tryboot"
	"github.com/cairn-edge/cairn/agent/contract"
	"golang.org/x/sys/unix"
)

// Boot media families, as a board file's firmware names them.
const (
	familyUEFI = "uefi"
	familyRPi  = "rpi"
)

// bootMedia is how this node boots, as its disk says: the boot loader's
// family and the FAT partitions the agent mounts. The first mount is at
// contract.ESPMount and holds the per-node files (cairn flash --name and
// cairn provision write them to the ESP, or to a Raspberry Pi's
// CAIRN-AUTO: builder/disk.OpenESP).
type bootMedia struct {
	family string
	mounts []fatMount
}

// fatMount is one FAT partition and where it is mounted.
type fatMount struct {
	label, device, dir string
}

// detectBootMedia finds the boot media with find (blockdev.FindPartition):
// a disk with CAIRN-AUTO is a Raspberry Pi's, whose CAIRN-AUTO is mounted
// at contract.ESPMount and each slot's boot partition (BOOT-A, BOOT-B, on
// the same disk) at its contract.Slot.RPiBootMount, for tryboot; any
// other disk is a UEFI board's, whose ESP is mounted at
// contract.ESPMount, for systemd-boot.
func detectBootMedia(find func(label string) (blockdev.Partition, error)) (bootMedia, error) {
	auto, err := find(contract.RPiAutoLabel)
	if errors.Is(err, blockdev.ErrNotFound) {
		esp, err := find(contract.LabelESP)
		if err != nil {
			return bootMedia{}, fmt.Errorf("finding the boot partition: %w (neither %s nor %s: is this a disk Cairn built?)", err, contract.LabelESP, contract.RPiAutoLabel)
		}
		return bootMedia{family: familyUEFI, mounts: []fatMount{{contract.LabelESP, esp.Path, contract.ESPMount}}}, nil
	}
	if err != nil {
		return bootMedia{}, err
	}
	m := bootMedia{family: familyRPi, mounts: []fatMount{{contract.RPiAutoLabel, auto.Path, contract.ESPMount}}}
	for _, s := range contract.Slots {
		p, err := find(s.RPiBootLabel())
		if err != nil {
			return bootMedia{}, fmt.Errorf("%s is on %s, so this is a Raspberry Pi's card, but %w (reflash the card)", contract.RPiAutoLabel, auto.Disk, err)
		}
		if p.Disk != auto.Disk {
			return bootMedia{}, fmt.Errorf("%s is on %s but %s on %s: two Cairn disks are attached (remove the one that is not booted)", contract.RPiAutoLabel, auto.Disk, s.RPiBootLabel(), p.Disk)
		}
		m.mounts = append(m.mounts, fatMount{s.RPiBootLabel(), p.Path, s.RPiBootMount()})
	}
	return m, nil
}

// mountFAT mounts a FAT partition; a seam for tests.
var mountFAT = func(device, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// Read-write: the boot loader writes them in an upgrade. flush
	// writes each file out at its close.
	err := unix.Mount(device, dir, "vfat", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "umask=0077,shortname=mixed,flush")
	if errors.Is(err, unix.EBUSY) {
		return nil // mounted by an earlier run of the agent
	}
	return err
}

// mount mounts m's partitions, all of them that it can.
func (m bootMedia) mount() error {
	var errs []error
	for _, fm := range m.mounts {
		if err := mountFAT(fm.device, fm.dir); err != nil {
			errs = append(errs, fmt.Errorf("mounting %s (%s) at %s: %w", fm.label, fm.device, fm.dir, err))
		}
	}
	return errors.Join(errs...)
}

// loader is the boot loader of m, on its mount points (on an ESP:
// extlinux where the ESP holds its menu, else sdboot), and the ESP's
// files the slots boot from (nil on a Pi, whose loader reads a slot's
// files back itself). A node whose media were not found is taken
// for a UEFI board, as before there were others: its upgrades fail on
// the loader's state, saying so.
func (m bootMedia) loader(log *slog.Logger) (bootloader.Bootloader, fs.FS, error) {
	if m.family != familyRPi {
		// The ESP of a UEFI board, or of a board whose U-Boot reads
		// extlinux.conf there (the Jetson Nano).
		esp := bootloader.DirFS(contract.ESPMount)
		ext, err := extlinux.Probe(esp)
		if err != nil {
			return nil, nil, fmt.Errorf("the ESP's %s: %w (reflash the card, or restore the file)", contract.ExtlinuxConf, err)
		}
		if ext {
			return extlinux.New(esp, log), os.DirFS(contract.ESPMount), nil
		}
		return sdboot.New(esp, log), os.DirFS(contract.ESPMount), nil
	}
	boot := map[contract.Slot]bootloader.FS{}
	for _, s := range contract.Slots {
		boot[s] = bootloader.DirFS(s.RPiBootMount())
	}
	l, err := tryboot.New(bootloader.DirFS(contract.ESPMount), boot, os.DirFS(contract.RPiDeviceTree), log)
	return l, nil, err
}
