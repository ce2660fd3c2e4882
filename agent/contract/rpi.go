package contract

import "strings"

// The Raspberry Pi's SD card (Pi 4 and 5): the firmware reads MBR
// partitions only, and its own A/B mechanism, tryboot, picks the boot
// partition. Partition 1, CAIRN-AUTO, a small FAT, holds only autoboot.txt;
// partitions 2 and 3 are the slots' boot partitions, BOOT-A and BOOT-B
// (FAT: firmware, config.txt, cmdline.txt, kernel, initramfs, DTBs,
// overlays). agent/bootloader/tryboot writes them.
const (
	// RPiAutoLabel is partition 1's FAT volume label.
	RPiAutoLabel = "CAIRN-AUTO"
	// RPiAutoPartition is CAIRN-AUTO's MBR partition number.
	RPiAutoPartition = 1
	// rpiBootLabelPrefix + the slot's letter in capitals labels a slot's
	// boot partition (RPiBootLabel).
	rpiBootLabelPrefix = "BOOT-"
)

// RPiBootLabel is the FAT volume label of the slot's boot partition on a
// Raspberry Pi: BOOT-A or BOOT-B.
func (s Slot) RPiBootLabel() string { return rpiBootLabelPrefix + strings.ToUpper(string(s)) }

// RPiBootPartition is the MBR partition number of the slot's boot
// partition on a Raspberry Pi: 2 for a, 3 for b (what autoboot.txt's
// boot_partition says and the device tree's partition reports).
func (s Slot) RPiBootPartition() uint32 {
	if s == SlotB {
		return 3
	}
	return 2
}

// RPiSlotOfPartition is the slot whose boot partition is MBR partition p,
// if there is one.
func RPiSlotOfPartition(p uint32) (Slot, bool) {
	for _, s := range Slots {
		if s.RPiBootPartition() == p {
			return s, true
		}
	}
	return "", false
}

// Files on the Raspberry Pi's FAT partitions, relative to their roots.
const (
	// RPiAutobootFile is on CAIRN-AUTO: the firmware reads it by this
	// exact name.
	RPiAutobootFile = "autoboot.txt"
	// RPiAutobootSize is autoboot.txt's one fixed size: the firmware reads
	// at most 512 bytes of it, and one size lets the agent overwrite it in
	// place, one sector, rather than replace it (FAT has no atomic rename).
	RPiAutobootSize = 512
	// RPiStampFile is on a slot's boot partition, written last by an
	// install: the partition is complete (it names the slot and version).
	RPiStampFile = "cairn-slot.txt"
	// RPiConfigFile is the firmware's configuration on a boot partition.
	RPiConfigFile = "config.txt"
	// RPiCmdlineFile holds the kernel command line, one line.
	RPiCmdlineFile = "cmdline.txt"
	// RPiKernelFile and RPiInitrdFile are the slot's kernel and initramfs
	// on its boot partition, as its config.txt names them: names the
	// firmware never loads by default (as kernel8.img and initramfs8), so
	// that a boot partition without its config.txt boots nothing.
	RPiKernelFile = "vmlinuz"
	RPiInitrdFile = "initrd"
)

// RPiLoaderFiles are the names on a boot partition (or CAIRN-AUTO) that
// the boot loader writes itself: a board file by one of these names
// (compared ignoring case, as FAT does) is refused, by Install and by the
// update artifact's checks.
var RPiLoaderFiles = []string{RPiKernelFile, RPiInitrdFile, RPiCmdlineFile, RPiStampFile, RPiAutobootFile}

// Where the agent mounts the Raspberry Pi's FAT partitions: CAIRN-AUTO at
// ESPMount (so the per-node files are read where they are on a UEFI
// board), each slot's boot partition at its RPiBootMount, under /run: a
// directory on CAIRN-AUTO would be one more write to the partition the
// firmware reads first.
const RPiBootMountDir = RunDir + "/boot"

// RPiBootMount is where the agent mounts the slot's boot partition
// (BOOT-A or BOOT-B) on a Raspberry Pi.
func (s Slot) RPiBootMount() string { return RPiBootMountDir + "/" + string(s) }

// The device tree's record of this boot, as the firmware leaves it.
const (
	// RPiDeviceTree is where the kernel shows the device tree.
	RPiDeviceTree = "/proc/device-tree"
	// RPiDTTryboot, under RPiDeviceTree, is 1 (a big-endian uint32) if
	// this boot is a tryboot, else 0.
	RPiDTTryboot = "chosen/bootloader/tryboot"
	// RPiDTPartition, under RPiDeviceTree, is the MBR partition number
	// (a big-endian uint32) the firmware booted from.
	RPiDTPartition = "chosen/bootloader/partition"
)

// RPiTrybootArg is reboot(2)'s RESTART2 argument that sets the firmware's
// one-shot tryboot flag ("0": the default partition, which autoboot.txt's
// [tryboot] section then overrides).
const RPiTrybootArg = "0 tryboot"
