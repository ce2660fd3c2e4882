// Package tryboot is the A/B boot loader of the Raspberry Pi 4 and 5: the
// firmware's own tryboot, which picks one of two boot partitions.
//
// # The SD card
//
//	1  CAIRN-AUTO  FAT: autoboot.txt (and the per-node files, which the loader never touches)
//	2  BOOT-A      FAT: slot a's boot files
//	3  BOOT-B      FAT: slot b's boot files
//
// autoboot.txt (contract.RPiAutobootFile) says, in its fixed size of
// contract.RPiAutobootSize bytes (Autoboot.Render):
//
//	[all]
//	tryboot_a_b=1
//	boot_partition=2
//	[tryboot]
//	boot_partition=3
//
// [all]'s boot_partition is the committed default slot's partition, which
// the firmware boots normally; [tryboot]'s is the other slot's, which it
// boots when its one-shot tryboot flag is set. reboot(2)'s RESTART2 with
// "0 tryboot" (contract.RPiTrybootArg) sets the flag, and the firmware
// clears it before it boots, so a trial that crashes, hangs or loses power
// returns to the default on the next boot. The firmware tells the booted
// system what it did in the device tree (contract.RPiDTTryboot and
// contract.RPiDTPartition, read by ReadBootRecord).
//
// A slot's boot partition holds the board's files (BootFiles.Files: the
// firmware, DTBs, overlays, the board's config.txt), the kernel and the
// initramfs (contract.RPiKernelFile and RPiInitrdFile), cmdline.txt (one
// line, ending in the slot's contract.SlotOption), a config.txt that Install
// composes — the board's, then an [all] section naming the kernel, the
// initramfs and cmdline.txt — and, written last, the stamp
// (contract.RPiStampFile), which says that the partition is complete and
// which slot and version it holds.
//
// Install refuses an install without board files (an update artifact
// that lacks them): the partition would not boot. Readback gives a slot's
// files back as Install was given them (config.txt: the board's part), so
// an upgrade copies the unchanged ones from the running slot.
//
// Install owns config.txt's choice of boot files, so that config.txt names
// only files that are there: the board's config.txt may set anything but
// kernel, initramfs, ramfsfile, cmdline, os_prefix, upstream_kernel,
// include and auto_initramfs (refused, with the line), and arm_64bit only
// to 1; Install's lines come after it, under [all], whatever filter the
// board's file left open, and name the files it wrote before it.
//
// # The operations
//
//   - Install removes the slot's stamp, then its config.txt (without it the
//     firmware finds no kernel: the kernel's name is no default name), writes
//     the files, config.txt, and the stamp last. It refuses the default slot,
//     and any slot while the other is not a complete default.
//   - ArmTrial checks the stamp, makes [tryboot] name the slot if it does not
//     (it normally does: it is always the non-default slot) and returns the
//     reboot argument.
//   - Trial is the device tree's tryboot flag, for the partition of the
//     running slot, when that slot is not [all]'s (and then it must have
//     its stamp: a slot marked bad or half installed is an error).
//   - Commit rewrites autoboot.txt with [all] on the slot, [tryboot] on the
//     other; MarkBad removes the slot's stamp and config.txt, so nothing
//     arms it or boots it before it is installed again.
//
// # Power cuts
//
// The firmware reads autoboot.txt by its exact name; FAT has no atomic
// rename, and a missing or garbled autoboot.txt would leave the firmware
// nothing to boot (partition 1 holds no kernel). So autoboot.txt is never
// replaced once written: it always has one size, contract.RPiAutobootSize
// (512 bytes, padded with comment lines), and Commit and ArmTrial overwrite
// it in place (bootloader.Overwriter: one write at offset 0 of the same
// length, then fsync and syncfs). Its one data sector is then old or new
// after a cut, on two assumptions:
//
//   - the card writes a 512-byte sector all or nothing. The SD
//     specification does not promise it: a card maps sectors onto flash
//     pages of 4-16 KiB, and a cut while it programs one can garble the
//     page, on some cards also pages written before it (paired MLC pages).
//     Cards with power-loss protection (industrial ones) do promise it. One
//     sector is the least a change of autoboot.txt can write.
//   - vfat also rewrites autoboot.txt's directory entry, for its
//     modification time (its cluster and size stay): a second sector, in
//     the same state of a torn write. A writer of the raw partition that
//     knows FAT could spare it.
//
// The boot partitions' files are replaced whole (bootloader.FS.WriteFile).
// Install removes the stamp first and config.txt second, so that while its
// files are mixed the partition is neither armed nor bootable (the kernel's
// name, contract.RPiKernelFile, is no name the firmware loads by default,
// and a Pi 5 boots no partition without config.txt); it writes config.txt
// and the stamp last. The firmware's flag does not outlive a cut, so a cut
// boots [all]'s slot, which no operation leaves incomplete. Every operation
// can be repeated after a cut.
//
// # On the node and in the builder
//
// The agent mounts CAIRN-AUTO at contract.ESPMount and both boot
// partitions at contract.Slot.RPiBootMount, found by their GPT labels
// (contract.RPiAutoLabel, contract.Slot.RPiBootLabel), read-write, and
// passes them as DirFSes with the device tree:
//
//	bl, err := tryboot.New(bootloader.DirFS(contract.ESPMount), map[contract.Slot]bootloader.FS{
//		contract.SlotA: bootloader.DirFS(contract.SlotA.RPiBootMount()),
//		contract.SlotB: bootloader.DirFS(contract.SlotB.RPiBootMount()),
//	}, os.DirFS(contract.RPiDeviceTree), log)
//
// The builder lays down a fresh card with NewCard and copies its MemFSes
// into the three FAT partitions.
package tryboot

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"

	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/contract"
)

// AutoFS is CAIRN-AUTO: an FS whose autoboot.txt can be overwritten in place.
type AutoFS interface {
	bootloader.FS
	bootloader.Overwriter
}

// Loader is the Raspberry Pi's implementation of bootloader.Bootloader.
type Loader struct {
	auto AutoFS
	boot map[contract.Slot]bootloader.FS
	dt   fs.FS
	log  *slog.Logger
}

var _ bootloader.Bootloader = (*Loader)(nil)

// New returns the boot loader of a card: auto is CAIRN-AUTO, boot holds
// each slot's boot partition, dt is the device tree (os.DirFS of
// contract.RPiDeviceTree on the node; nil in the builder, which never asks
// Trial). log may be nil.
func New(auto AutoFS, boot map[contract.Slot]bootloader.FS, dt fs.FS, log *slog.Logger) (*Loader, error) {
	if auto == nil {
		return nil, errors.New("tryboot: no CAIRN-AUTO file system")
	}
	b := map[contract.Slot]bootloader.FS{}
	for _, s := range contract.Slots {
		if boot[s] == nil {
			return nil, fmt.Errorf("tryboot: no file system for slot %s's boot partition (%s)", s, s.RPiBootLabel())
		}
		b[s] = boot[s]
	}
	if len(boot) != len(b) {
		return nil, fmt.Errorf("tryboot: boot partitions for %d slots, want %d (a and b)", len(boot), len(b))
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Loader{auto: auto, boot: b, dt: dt, log: log}, nil
}

// autoboot reads and parses autoboot.txt; ok is false if it is missing
// (a fresh card, before its first Commit).
func (l *Loader) autoboot() (ab Autoboot, raw []byte, ok bool, err error) {
	raw, err = l.auto.ReadFile(contract.RPiAutobootFile)
	if errors.Is(err, fs.ErrNotExist) {
		return Autoboot{}, nil, false, nil
	}
	if err != nil {
		return Autoboot{}, nil, false, fmt.Errorf("reading %s's %s: %w", contract.RPiAutoLabel, contract.RPiAutobootFile, err)
	}
	ab, err = ParseAutoboot(raw)
	if err != nil {
		return Autoboot{}, nil, false, fmt.Errorf("%s's %w", contract.RPiAutoLabel, err)
	}
	return ab, raw, true, nil
}

// requireAutoboot reads autoboot.txt, which must be there: on a card that has
// booted, it always is.
func (l *Loader) requireAutoboot(op string) (Autoboot, []byte, error) {
	ab, raw, ok, err := l.autoboot()
	if err != nil {
		return Autoboot{}, nil, fmt.Errorf("%s: %w", op, err)
	}
	if !ok {
		return Autoboot{}, nil, fmt.Errorf("%s: %s has no %s, so no slot is committed (install and commit a slot first)", op, contract.RPiAutoLabel, contract.RPiAutobootFile)
	}
	return ab, raw, nil
}

// writeAutoboot makes autoboot.txt say ab: in place when it exists (raw is
// its content), as a new file on a fresh card.
func (l *Loader) writeAutoboot(raw []byte, exists bool, ab Autoboot) error {
	data := ab.Render()
	if !exists {
		return l.auto.WriteFile(contract.RPiAutobootFile, bytes.NewReader(data))
	}
	if len(raw) != len(data) {
		return fmt.Errorf("%s's %s holds %d bytes, not %d: it was not written by Cairn (or by hand), and only an overwrite of the same size is safe against a power cut; write it anew, as tryboot.Autoboot.Render does, from a workstation", contract.RPiAutoLabel, contract.RPiAutobootFile, len(raw), len(data))
	}
	if err := l.auto.Overwrite(contract.RPiAutobootFile, data); err != nil {
		return fmt.Errorf("rewriting %s's %s: %w", contract.RPiAutoLabel, contract.RPiAutobootFile, err)
	}
	return nil
}

// stamp is a boot partition's contract.RPiStampFile.
type stamp struct {
	Slot    contract.Slot
	Version string
}

func (s stamp) render() []byte {
	return []byte("# Cairn: this boot partition is complete.\nslot=" + string(s.Slot) + "\nversion=" + s.Version + "\n")
}

// parseStamp reads a stamp: key=value lines, slot required, # comments.
func parseStamp(b []byte) (stamp, error) {
	var s stamp
	seen := map[string]bool{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || seen[k] {
			return stamp{}, fmt.Errorf("line %d: %q is not a key=value line of its own", i+1, line)
		}
		seen[k] = true
		switch k {
		case "slot":
			slot, err := contract.ParseSlot(v)
			if err != nil {
				return stamp{}, fmt.Errorf("line %d: %w", i+1, err)
			}
			s.Slot = slot
		case "version":
			s.Version = v
		default:
			return stamp{}, fmt.Errorf("line %d: unknown key %q", i+1, k)
		}
	}
	if s.Slot == "" {
		return stamp{}, errors.New("no slot= line")
	}
	return s, nil
}

// installed checks that slot's boot partition is complete: its stamp is
// there and names slot (not the other: partitions mixed up).
func (l *Loader) installed(slot contract.Slot) (stamp, error) {
	b, err := l.boot[slot].ReadFile(contract.RPiStampFile)
	if errors.Is(err, fs.ErrNotExist) {
		return stamp{}, fmt.Errorf("slot %s is not installed: %s has no %s, which its install writes last (install the slot again)", slot, slot.RPiBootLabel(), contract.RPiStampFile)
	}
	if err != nil {
		return stamp{}, fmt.Errorf("reading %s's %s: %w", slot.RPiBootLabel(), contract.RPiStampFile, err)
	}
	s, err := parseStamp(b)
	if err != nil {
		return stamp{}, fmt.Errorf("%s's %s: %w (install the slot again)", slot.RPiBootLabel(), contract.RPiStampFile, err)
	}
	if s.Slot != slot {
		return stamp{}, fmt.Errorf("%s's %s names slot %s: the boot partitions are mixed up (install slot %s again)", slot.RPiBootLabel(), contract.RPiStampFile, s.Slot, slot)
	}
	return s, nil
}
