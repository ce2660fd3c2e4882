// Package bootloader is Cairn's A/B boot-loader control: one interface that
// the builder uses to write a fresh image's boot files and the agent uses to
// upgrade, try, commit and roll back a slot, whatever the board's boot
// loader. Each family lives in its own package below this one (sdboot:
// systemd-boot on UEFI boards; tryboot: the Raspberry Pi firmware's A/B;
// extlinux: U-Boot's extlinux menu, with agent-side rollback) and works on
// FSes: a directory on the node
// (the ESP mounted at /boot) or a MemFS the builder fills and copies into
// its image.
//
// An upgrade on the node, from the running slot a:
//
//	bl := sdboot.New(bootloader.DirFS(contract.ESPMount), log)
//	err := bl.Install(contract.SlotB, bootloader.BootFiles{Kernel: k, Initrd: i, Cmdline: cmdline, Title: title, Version: "1.3.0"})
//	reboot, err := bl.ArmTrial(contract.SlotB) // then reboot with reboot.Arg
//	// on the next boot, running b:
//	trial, err := bl.Trial(contract.SlotB) // true: run the health gate
//	err = bl.Commit(contract.SlotB)        // healthy: b is the default
//	err = bl.MarkBad(contract.SlotB)       // not healthy: a is the default; reboot
//
// A fresh image, in the builder: Install(SlotA, files), Commit(SlotA).
//
// A loader whose slots have a boot partition each (tryboot) also reads a
// slot's files back as Install was given them (Readback), so an upgrade
// copies the running slot's unchanged files instead of downloading them.
//
// Every method leaves the disk, after a power cut at any instant, in a state
// whose next boot is a slot that was good (committed), or the armed trial.
package bootloader

import (
	"io"

	"github.com/cairn-edge/cairn/agent/contract"
)

// Bootloader controls which slot the firmware boots. Implementations keep
// their state on the boot media only, so the node and the builder agree
// without a state file, and a cut at any instant leaves the default on a
// good slot.
type Bootloader interface {
	// Install writes slot's boot files. It first makes slot not bootable,
	// since the caller is about to overwrite that slot (its partition and
	// its boot files), and leaves it not bootable: ArmTrial or Commit makes
	// it bootable again. It refuses the slot the firmware boots as the
	// committed default, and a slot whose removal would leave no committed
	// slot to boot.
	Install(slot contract.Slot, files BootFiles) error
	// ArmTrial makes the next boot, once, try slot (installed before); a
	// trial that does not reach Commit (a power cut, a panic, a hang and a
	// watchdog reset) falls back to the committed slot on the boot after.
	// The caller reboots the way Reboot says.
	ArmTrial(slot contract.Slot) (Reboot, error)
	// Trial tells whether this boot, of the running slot, is an armed trial
	// (the health gate decides on Commit or MarkBad) rather than a boot of
	// the committed slot.
	Trial(running contract.Slot) (bool, error)
	// Commit makes slot (installed before) the known-good default, whatever
	// the versions involved: a commit of an older version is a downgrade
	// the caller asked for.
	Commit(slot contract.Slot) error
	// MarkBad makes sure slot is not booted again until it is installed
	// anew; the other slot, which must be committed, is the default.
	MarkBad(slot contract.Slot) error
	// Default is the slot the firmware boots next.
	Default() (contract.Slot, error)
}

// Readback is implemented by a Bootloader that can read a slot's boot
// files back as Install was given them (tryboot, whose slots have a boot
// partition each): an upgrade copies the running slot's files that the
// new release carries unchanged instead of downloading them. Each returns
// an error matching fs.ErrNotExist for a file the slot does not hold, and
// may return another error for one it cannot give back as it was given.
type Readback interface {
	// OpenKernel and OpenInitrd open slot's kernel and initramfs.
	OpenKernel(slot contract.Slot) (io.ReadCloser, error)
	OpenInitrd(slot contract.Slot) (io.ReadCloser, error)
	// OpenFile opens slot's board file name (File.Name).
	OpenFile(slot contract.Slot, name string) (io.ReadCloser, error)
}

// BootFiles are what a slot boots from, besides its root partition.
// Kernel and Initrd are read once, by Install.
type BootFiles struct {
	// Kernel is the kernel image (vmlinuz, or an arm64 Image).
	Kernel io.Reader
	// Initrd is the initramfs.
	Initrd io.Reader
	// Cmdline is the kernel command line without the slot parameter: the
	// implementation adds contract.SlotOption(slot).
	Cmdline []string
	// Title is shown in a boot menu, if the loader shows one.
	Title string
	// Version is the image version, for people reading the boot media; it
	// does not order anything (a downgrade is a version like any other).
	Version string
	// Files are board files copied as they are onto the slot's boot
	// partition: config.txt, DTBs, overlays, firmware (the Raspberry Pi's
	// tryboot). Loaders without a boot partition per slot (sdboot) refuse
	// them. Each is read once, by Install.
	Files []File
}

// File is a board file on a slot's boot partition.
type File struct {
	// Name is its slash-separated path relative to the partition's root,
	// as "overlays/disable-bt.dtbo".
	Name string
	// Data is its content.
	Data io.Reader
}

// Reboot says how to reboot into an armed trial.
type Reboot struct {
	// Arg, when not empty, is the argument of reboot(2)'s RESTART2 command
	// that arms the trial (the Raspberry Pi firmware's "0 tryboot"); empty
	// means a plain reboot.
	Arg string
}
