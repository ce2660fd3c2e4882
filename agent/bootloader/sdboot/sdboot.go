// Package sdboot is the A/B boot loader of UEFI boards: systemd-boot with
// Boot Loader Specification type #1 entries and boot counting, on the ESP.
//
//	bl := sdboot.New(bootloader.DirFS(contract.ESPMount), slog.Default())
//	err := bl.Install(contract.SlotB, files) // b's entry removed, files written
//	_, err = bl.ArmTrial(contract.SlotB)     // cairn-00000003-b+1.conf; reboot
//
// # Entry names and order
//
// Each slot has one entry, loader/entries/cairn-<gen>-<slot>[+<left>[-<done>]].conf,
// and loader.conf (written once, never rewritten) says "default cairn-*":
// the first Cairn entry in systemd-boot's order boots. That order is: entries
// with no tries left last; then, as no entry has a sort-key, by file name
// compared as versions, highest first. The name starts with a generation
// number, one above every generation on the ESP each time an entry is
// written, so the order is the order of the operations, never of versions
// or slot letters:
//
//   - ArmTrial writes the slot's entry at a new generation with one try,
//     "+1": it boots next, once; systemd-boot renames it "+0-1" before it
//     starts the kernel, so a trial that is cut, panics or hangs is sorted
//     last on the boot after, and the committed slot boots.
//   - Commit writes the slot's entry at a new generation without counters:
//     it is the default until the next ArmTrial or Commit, whether its
//     version is newer or older (a downgrade, a rollback after a commit).
//   - Install and MarkBad remove the slot's entries: the other slot's
//     committed entry is the default.
//
// # Power cuts
//
// FAT has no atomic rename, so no operation renames an entry: each writes the
// new entry (DirFS writes a dot-named temporary file, which systemd-boot
// skips, and renames it: either name is harmless) before it removes the old
// ones, and each single write or removal, lost or done, leaves a state whose
// default is a committed slot or the armed trial. Install writes the slot's
// entry content to the slot's boot directory (stagedEntry) last, after its
// kernel and initramfs, so ArmTrial and Commit never make a half-written slot
// bootable. Every operation can be repeated after a cut.
//
// # Checked with systemd-boot under OVMF
//
// testdata/ovmf.sh boots Debian 12's systemd-boot 252.39 (systemd-boot-efi
// 252.39-1~deb12u2) under OVMF (QEMU 7.2, TCG, q35) from a GPT disk whose
// FAT32 ESP holds the entries this package wrote through DirFS, each with a
// marker on the kernel command line, and reads the marker the kernel
// printed. It booted, one step after the other (2026-12-01):
//
//	a committed, trial of b armed           b; systemd-boot renamed it cairn-00000002-b+0-1.conf
//	no commit (a cut, a panic)              a
//	trial of b armed again                  b
//	b committed                             b
//	a installed (1.0, b is 3.0), armed      a (plain names, cairn-b.conf and cairn-a+1.conf, boot b: checked)
//	no commit                               b, the last committed slot
//	a committed: the lower version          a
//	a marked bad                            b
//
// A foreign entry (debian.conf, which sorts before every cairn-* name) was
// on the ESP all along and never booted: "default cairn-*" picks the first
// matching entry in the order. An old name (cairn-a.conf) sorts after a
// generation, and a dot-named file (a DirFS temporary) is not booted.
package sdboot

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"sort"
	"strings"

	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/contract"
)

// Loader is systemd-boot's implementation of bootloader.Bootloader, on an
// ESP seen through an FS.
type Loader struct {
	fs  bootloader.FS
	log *slog.Logger
}

var _ bootloader.Bootloader = (*Loader)(nil)

// New returns the boot loader of the ESP fsys. log may be nil (the builder
// has nothing to say about an image's first entries).
func New(fsys bootloader.FS, log *slog.Logger) *Loader {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Loader{fs: fsys, log: log}
}

// loaderConf is loader/loader.conf: no menu, and the default is the first
// Cairn entry in systemd-boot's order. It is the same for every image and
// every state, so it is written once and never rewritten on the FAT (and
// if it were lost, systemd-boot's defaults, no menu and the first entry,
// boot the same entry).
const loaderConf = "timeout 0\ndefault " + namePrefix + "*\nconsole-mode keep\neditor no\n"

// LoaderConf returns loader/loader.conf's content.
func LoaderConf() []byte { return []byte(loaderConf) }

// stagedEntry is where Install keeps slot's entry content until ArmTrial or
// Commit writes it into contract.ESPEntriesDir; systemd-boot reads no
// entries there.
func stagedEntry(slot contract.Slot) string { return path.Join(slot.BootDir(), "entry.conf") }

// bootPath is an absolute ESP path of one of slot's boot files, as entries
// name them.
func bootPath(slot contract.Slot, file string) string {
	return "/" + path.Join(slot.BootDir(), file)
}

// entry is an entry on the ESP: its parsed name and its file's name there.
type entry struct {
	Entry
	file string
}

// entries reads the Cairn entries' names from the ESP, in systemd-boot's
// order: the first is the default. Files that are not Cairn entries are left
// alone; a file named like one that does not parse is an error, since
// systemd-boot's default pattern would match it.
func (l *Loader) entries() ([]entry, error) {
	names, err := l.fs.ReadDir(contract.ESPEntriesDir)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", contract.ESPEntriesDir, err)
	}
	var es []entry
	for _, name := range names {
		// FAT keeps the case it was given and systemd-boot folds it.
		lower := strings.ToLower(name)
		if !strings.HasPrefix(lower, namePrefix) || !strings.HasSuffix(lower, ".conf") {
			continue
		}
		e, err := ParseFileName(lower)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w (not written by Cairn: remove it)", contract.ESPEntriesDir, name, err)
		}
		es = append(es, entry{e, path.Join(contract.ESPEntriesDir, name)})
	}
	sortEntries(es)
	return es, nil
}

// sortEntries orders entries as systemd-boot 252 does ours (boot.c,
// boot_entry_compare): no tries left last; then the file name as a version,
// highest first, which is the generation, then the slot letter (names
// without a generation), then more tries left and fewer tries done first.
func sortEntries(es []entry) {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i], es[j]
		switch {
		case a.Exhausted() != b.Exhausted():
			return b.Exhausted()
		case a.Gen != b.Gen:
			return a.Gen > b.Gen
		case a.Slot != b.Slot:
			return a.Slot > b.Slot
		case a.Counting != b.Counting:
			// "+" is no version character and "." loses to a digit, so
			// "cairn-…-b+1.conf" sorts before "cairn-…-b.conf".
			return a.Counting
		case a.Left != b.Left:
			return a.Left > b.Left
		}
		return a.Done < b.Done
	})
}

// committed is slot's committed entry (no counters), if it has one.
func committed(es []entry, slot contract.Slot) (entry, bool) {
	for _, e := range es {
		if e.Slot == slot && !e.Counting {
			return e, true
		}
	}
	return entry{}, false
}

// nextGen is one above every generation on the ESP.
func nextGen(es []entry) uint64 {
	var g uint64
	for _, e := range es {
		g = max(g, e.Gen)
	}
	return g + 1
}

// readStaged reads and checks slot's staged entry content: it must boot
// that slot's kernel with that slot's parameter, so that a file mixed up
// between slots never boots the wrong root.
func (l *Loader) readStaged(slot contract.Slot) ([]byte, error) {
	name := stagedEntry(slot)
	b, err := l.fs.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("slot %s is not installed: %s is missing (Install the slot first)", slot, name)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	var e Entry
	if err := e.parseKeys(name, b); err != nil {
		return nil, err
	}
	if e.Linux != bootPath(slot, contract.KernelFile) || !hasOption(e.Options, contract.SlotOption(slot)) {
		return nil, fmt.Errorf("%s does not boot slot %s (linux %q, options %q): install the slot again", name, slot, e.Linux, e.Options)
	}
	return b, nil
}

func hasOption(options, opt string) bool {
	for _, o := range strings.Fields(options) {
		if o == opt {
			return true
		}
	}
	return false
}

// writeEntry writes slot's entry at a new generation, then removes slot's
// older entries: a cut in between leaves both, and the new one sorts first.
func (l *Loader) writeEntry(es []entry, slot contract.Slot, trial bool, content []byte) (Entry, error) {
	e := Entry{Gen: nextGen(es), Slot: slot, Counting: trial}
	if trial {
		e.Left = 1
	}
	name := path.Join(contract.ESPEntriesDir, e.FileName())
	if err := l.fs.WriteFile(name, bytes.NewReader(content)); err != nil {
		return Entry{}, err
	}
	return e, l.removeEntries(es, slot)
}

// removeEntries removes slot's entries among es.
func (l *Loader) removeEntries(es []entry, slot contract.Slot) error {
	for _, e := range es {
		if e.Slot != slot {
			continue
		}
		if err := l.fs.Remove(e.file); err != nil {
			return fmt.Errorf("removing %s: %w", e.file, err)
		}
	}
	return nil
}
