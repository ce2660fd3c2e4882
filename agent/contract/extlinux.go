package contract

// U-Boot's extlinux boards (the Jetson Nano): U-Boot's distro boot reads
// ExtlinuxConf from the first partition, the ESP (labelled and typed as on
// UEFI boards, so that the per-node files and the agent's /boot mount are
// the same), and boots its DEFAULT label. U-Boot there counts no boots, so
// the A/B is agent-side rollback only: agent/bootloader/extlinux arms a
// trial by making its label the DEFAULT, and the trial's cairn-init sets
// the DEFAULT back to the committed slot early in the trial boot
// (ExtlinuxParam tells it to). Paths are relative to the ESP's root; a
// slot's kernel, initramfs and device tree are in its Slot.BootDir, as on
// UEFI boards.
const (
	// ExtlinuxConf is the boot menu U-Boot reads (its boot_syslinux_conf,
	// under the prefix "/").
	ExtlinuxConf = "extlinux/extlinux.conf"
	// ExtlinuxSector is the unit ExtlinuxConf and ExtlinuxTrialFile are
	// laid out and overwritten in: one sector, the most a power cut is
	// assumed to leave old or new and nothing in between.
	ExtlinuxSector = 512
	// ExtlinuxConfSize is ExtlinuxConf's one fixed size: a header sector
	// (the DEFAULT line), then a sector per slot (its LABEL), in Slots
	// order. It is overwritten in place, never replaced (FAT has no atomic
	// rename, and U-Boot reads it by this exact name).
	ExtlinuxConfSize = (1 + 2) * ExtlinuxSector
	// ExtlinuxTrialFile is the trial flag: whether a trial of a slot is
	// armed, or was booted and its DEFAULT set back. One sector,
	// overwritten in place.
	ExtlinuxTrialFile = espSlotRoot + "/trial.txt"
	// ExtlinuxTrialSize is ExtlinuxTrialFile's one fixed size.
	ExtlinuxTrialSize = ExtlinuxSector
	// ExtlinuxStampName, in a slot's BootDir, is the slot's label as its
	// install wrote it into ExtlinuxConf, written last: the slot is
	// complete.
	ExtlinuxStampName = "label.conf"
	// ExtlinuxParam is on the kernel command line of every extlinux
	// label (a flag without a value): cairn-init's stage 1 then mounts
	// the ESP and sets a trial's DEFAULT back before it mounts the slot.
	ExtlinuxParam = "cairn.extlinux"
)
