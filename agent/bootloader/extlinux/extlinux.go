// Package extlinux is the A/B boot loader of boards whose firmware is
// U-Boot reading extlinux/extlinux.conf (the Jetson Nano): one FAT boot
// partition, the ESP, with both slots' boot files and one boot menu. U-Boot
// there counts no boots, so a trial is rolled back by the node itself:
// agent-side rollback.
//
// # The ESP
//
//	extlinux/extlinux.conf      the menu (contract.ExtlinuxConf): 3 sectors, overwritten in place
//	cairn/trial.txt             the trial flag (contract.ExtlinuxTrialFile): 1 sector, in place
//	cairn/a/vmlinuz, initrd     slot a's kernel and initramfs
//	cairn/a/<board>.dtb         slot a's device tree (the one .dtb among BootFiles.Files)
//	cairn/a/label.conf          slot a's label as installed, written last (contract.ExtlinuxStampName)
//	cairn/b/...                 slot b's
//
// extlinux.conf is a header sector,
//
//	TIMEOUT 50
//	DEFAULT cairn-a
//
// then one sector per slot, each either a label or only comments (a slot
// with no label, which nothing boots):
//
//	LABEL cairn-a
//	  # title: Cairn minimal 1.0.0 (slot A)
//	  # version: 1.0.0
//	  LINUX /cairn/a/vmlinuz
//	  INITRD /cairn/a/initrd
//	  FDT /cairn/a/tegra210-p3450-0000.dtb
//	  APPEND console=ttyS0,115200n8 cairn.extlinux cairn.slot=a
//
// each padded with comment lines to its 512 bytes.
//
// # What U-Boot does with it
//
// Read from U-Boot 2023.01's sources (boot/pxe_utils.c, common/menu.c,
// cmd/sysboot.c, include/config_distro_bootcmd.h) and the strings of
// Debian 12's qemu_arm64 build; sim_test.go is an independent model of it.
// Distro boot scans the partitions "part list -bootable" lists (the legacy
// BIOS bootable attribute or the ESP type: the builder sets both on
// partition 1), else partition 1, for /extlinux/extlinux.conf and
// /boot/extlinux/extlinux.conf, and runs "sysboot ... any". Keywords are case-insensitive; # starts a comment; a
// label ends at the first line that is not one of its keywords, which the
// top level then reads, so a stray LINUX line after a label would change
// that label (none can come: each label has its sector, and a slot
// without a label has only comments there). The last top-level DEFAULT
// wins. Without a prompt (none is asked for: no top-level MENU line, which
// would set one, and distro boot runs sysboot without -p), U-Boot boots
// the DEFAULT label at once; if that label's INITRD, LINUX or FDT cannot
// be loaded, or DEFAULT names no label, it tries the other labels in file
// order. A missing INCLUDE fails the whole file, so there is none. APPEND
// expands ${...} and $(...) and strips one level of \ and ', so a
// command line with $, \ or ' is refused; U-Boot's bootargs hold
// CONFIG_SYS_CBSIZE-1 bytes (2047 on Tegra, 511 on qemu_arm64), more than
// a label's sector leaves. FDT is loaded only where the environment has
// fdt_addr_r (Tegra's does; elsewhere U-Boot passes its own device tree).
//
// # The operations
//
//   - Install: a slot that is the committed DEFAULT is refused, and any
//     slot while the other is not complete. If the slot is the armed
//     DEFAULT, the DEFAULT goes back to the other slot first; a flag
//     naming the slot is cleared; its stamp is removed and its label
//     sector emptied; its files are written, then its label, then its
//     stamp, a copy of the label's sector.
//   - ArmTrial sets the flag "armed", then makes the slot the DEFAULT. A
//     plain reboot tries it.
//   - RevertTrial, in the trial's cairn-init, before it mounts the slot:
//     the DEFAULT back on the committed slot, then the flag "booted". From
//     then on a hang, a reset or a power cut boots the committed slot.
//   - Trial is the flag "booted" for the running slot (or "armed" while
//     the running slot is still the DEFAULT: cairn-init did not revert, so
//     Trial reverts first).
//   - Commit makes the slot the DEFAULT, then clears the flag; MarkBad
//     puts the DEFAULT on the other slot if it was the slot's armed
//     trial, clears the flag, removes the stamp and empties the label.
//
// A slot is complete when its stamp is there, parses as its label, the
// files the label names are there, and the menu's sector for it holds the
// same label. Nothing makes the DEFAULT a slot that is not complete.
//
// # Power cuts
//
// U-Boot reads extlinux.conf by its exact name, and FAT has no atomic
// rename: a replaced file could be missing after a cut, which boots
// nothing. So extlinux.conf and the flag are written once, at their fixed
// sizes, and then only overwritten in place (bootloader.Overwriter), and
// each write changes one 512-byte sector: the DEFAULT line, one slot's
// label, or the flag. The kernel writes back the whole page, but the
// sectors that did not change get the bytes they held; vfat also rewrites
// the file's directory entry (its modification time; its size and
// clusters stay). On the assumption tryboot's autoboot.txt rests on (a
// sector is written whole or not at all; see agent/bootloader/tryboot),
// each write is then done or not, and each single write, done or lost,
// leaves a DEFAULT naming a complete slot that is committed, or armed as
// the trial:
//
//	flag        DEFAULT   what it is
//	none        a         a committed
//	armed b     b         a committed, trial of b armed (the next boot tries b)
//	armed b     a         a committed (ArmTrial cut before the DEFAULT, or stale)
//	booted b    a         a committed, b's trial running or done (Trial(b) is true)
//	booted b    b         b committed (Commit cut before it cleared the flag)
//
// A slot's kernel, initramfs and device tree are replaced whole (FS
// WriteFile) while the slot has no label, so neither DEFAULT nor U-Boot's
// fallback boots them half written. Every operation can be repeated after
// a cut.
//
// # What agent-side rollback cannot cover
//
// Between U-Boot starting the trial's kernel and cairn-init's revert, the
// trial is the DEFAULT. A trial kernel that hangs there stays hung: no
// watchdog runs (mainline U-Boot 2023.01 has no Tegra watchdog driver and
// p3450-0000_defconfig enables none; NVIDIA's own U-Boot was not
// checked), and when the power is cycled U-Boot boots the trial again. One
// that panics reboots (Cairn's panic=10) into the trial again, and again.
// Either way the node needs a hand at U-Boot's serial console: interrupt
// autoboot, then "sysboot -p mmc 1:1 any ${scriptaddr}
// /extlinux/extlinux.conf" shows the labels for TIMEOUT's five seconds:
// type 1 (cairn-a) and Enter (U-Boot 2022.01 and later also take
// "setenv pxe_label_override cairn-a; boot"),
// or put the card in a workstation and set extlinux.conf's DEFAULT back.
//
// # On the node and in the builder
//
// The agent mounts the ESP at /boot and checks with Probe that it is
// extlinux's, then:
//
//	bl := extlinux.New(bootloader.DirFS(contract.ESPMount), log)
//
// cairn-init's stage 1 mounts the ESP when the kernel command line has
// contract.ExtlinuxParam and calls RevertTrial. The builder lays down a
// fresh ESP with NewESP.
package extlinux

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"slices"

	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/contract"
)

// FS is the ESP: an FS whose menu and flag can be overwritten in place.
type FS interface {
	bootloader.FS
	bootloader.Overwriter
}

// Loader is U-Boot extlinux's implementation of bootloader.Bootloader.
type Loader struct {
	fs  FS
	log *slog.Logger
}

var _ bootloader.Bootloader = (*Loader)(nil)

// New returns the boot loader of the ESP fsys. log may be nil.
func New(fsys FS, log *slog.Logger) *Loader {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Loader{fs: fsys, log: log}
}

// state is what the ESP says: the menu (hasConf false on a fresh ESP,
// before the first Commit) and the flag (hasFlag false likewise).
type state struct {
	conf    Conf
	hasConf bool
	flag    Flag
	hasFlag bool
}

// committed is the committed slot: the DEFAULT, unless it is an armed
// trial, whose fallback is the other slot.
func (st state) committed() contract.Slot {
	if st.flag.Armed(st.conf.Default) {
		return st.conf.Default.Other()
	}
	return st.conf.Default
}

// read reads the menu and the flag; both must parse when they exist.
func (l *Loader) read() (state, error) {
	var st state
	conf, err := l.readIf(contract.ExtlinuxConf)
	if err == nil && conf != nil {
		st.conf, err = ParseConf(conf)
		st.hasConf = err == nil
	}
	if err != nil {
		return state{}, err
	}
	flag, err := l.readIf(contract.ExtlinuxTrialFile)
	if err == nil && flag != nil {
		st.flag, err = ParseFlag(flag)
		st.hasFlag = err == nil
	}
	return st, err
}

// readIf reads name; a missing file is nil, without an error.
func (l *Loader) readIf(name string) ([]byte, error) {
	b, err := l.fs.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return b, nil
}

// requireConf reads the state, which must have a menu: on an ESP that has
// booted, it always does.
func (l *Loader) requireConf(op string) (state, error) {
	st, err := l.read()
	if err != nil {
		return state{}, fmt.Errorf("%s: %w", op, err)
	}
	if !st.hasConf {
		return state{}, fmt.Errorf("%s: the ESP has no %s, so no slot is committed (install and commit a slot first)", op, contract.ExtlinuxConf)
	}
	return st, nil
}

// writeConf makes the menu say c: in place when it exists, as a new file
// on a fresh ESP. The caller changes one part at a time (withDefault,
// withLabel), so that a write changes one sector.
func (l *Loader) writeConf(st *state, c Conf) error {
	data, err := c.Render()
	if err != nil {
		return err
	}
	if err := l.write(contract.ExtlinuxConf, st.hasConf, data); err != nil {
		return err
	}
	st.conf, st.hasConf = c, true
	return nil
}

// setDefault makes the DEFAULT slot, if it is not.
func (l *Loader) setDefault(st *state, slot contract.Slot) error {
	if st.conf.Default == slot {
		return nil
	}
	return l.writeConf(st, st.conf.withDefault(slot))
}

// setFlag makes the flag f, if it is not.
func (l *Loader) setFlag(st *state, f Flag) error {
	if st.hasFlag && st.flag == f {
		return nil
	}
	if err := l.write(contract.ExtlinuxTrialFile, st.hasFlag, f.Render()); err != nil {
		return err
	}
	st.flag, st.hasFlag = f, true
	return nil
}

// write overwrites name in place when it exists, else creates it (a cut
// then leaves it missing or whole: both read as before).
func (l *Loader) write(name string, exists bool, data []byte) error {
	if !exists {
		return l.fs.WriteFile(name, bytesReader(data))
	}
	if err := l.fs.Overwrite(name, data); err != nil {
		return fmt.Errorf("rewriting %s: %w", name, err)
	}
	return nil
}

// stampPath is slot's stamp.
func stampPath(slot contract.Slot) string {
	return path.Join(slot.BootDir(), contract.ExtlinuxStampName)
}

// bootPath is the absolute ESP path of one of slot's boot files, as the
// label names it.
func bootPath(slot contract.Slot, file string) string {
	return "/" + path.Join(slot.BootDir(), file)
}

// complete checks that slot is complete (see the package doc) and returns
// its label.
func (l *Loader) complete(st state, slot contract.Slot) (Label, error) {
	name := stampPath(slot)
	b, err := l.fs.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return Label{}, fmt.Errorf("slot %s is not installed: %s, which its install writes last, is missing (install the slot again)", slot, name)
	}
	if err != nil {
		return Label{}, fmt.Errorf("reading %s: %w", name, err)
	}
	lbl, err := ParseLabel(slot, b)
	if err != nil {
		return Label{}, fmt.Errorf("%s: %w (install the slot again)", name, err)
	}
	if err := checkLabel(slot, lbl); err != nil {
		return Label{}, fmt.Errorf("%s: %w (install the slot again)", name, err)
	}
	for _, p := range []string{lbl.Kernel, lbl.Initrd, lbl.FDT} {
		if p == "" {
			continue
		}
		dir, base := path.Split(p[1:])
		names, err := l.fs.ReadDir(path.Clean(dir))
		if err != nil {
			return Label{}, fmt.Errorf("listing %s: %w", dir, err)
		}
		if !slices.Contains(names, base) {
			return Label{}, fmt.Errorf("slot %s is not complete: its label names %s, which is missing (install the slot again)", slot, p)
		}
	}
	if st.hasConf {
		if got, ok := st.conf.Labels[slot]; !ok || got != lbl {
			return Label{}, fmt.Errorf("slot %s is not complete: %s's label for it is not the one its install wrote (install the slot again)", slot, contract.ExtlinuxConf)
		}
	}
	return lbl, nil
}

// checkLabel checks that a label boots slot only: its files in the slot's
// directory, its command line naming the slot, so that a label mixed up
// between slots never boots the wrong root.
func checkLabel(slot contract.Slot, lbl Label) error {
	prefix := "/" + slot.BootDir() + "/"
	for _, p := range []string{lbl.Kernel, lbl.Initrd, lbl.FDT} {
		if p != "" && (len(p) <= len(prefix) || p[:len(prefix)] != prefix || path.Clean(p) != p) {
			return fmt.Errorf("the label names %s, which is not in slot %s's directory %s", p, slot, prefix)
		}
	}
	if !hasOption(lbl.Append, contract.SlotOption(slot)) {
		return fmt.Errorf("the label's command line %q does not boot slot %s", lbl.Append, slot)
	}
	return nil
}
