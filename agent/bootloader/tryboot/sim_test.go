package tryboot

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/contract"
)

// The simulated firmware below is written from the Raspberry Pi
// documentation (config_txt/autoboot.adoc, conditional.adoc, boot.adoc,
// what_is_config_txt.adoc) and independent of this package's code on
// purpose: its own parser of autoboot.txt and config.txt, with the
// conditional filters, so that a file this package writes and the firmware
// reads differently shows.

// simCard is an SD card as the firmware sees it: FAT partitions by their
// MBR number (1 CAIRN-AUTO, 2 BOOT-A, 3 BOOT-B, as the package doc lays
// them out).
type simCard map[int]bootloader.FS

// simBooted is what the simulated firmware booted.
type simBooted struct {
	part    int           // the partition, /proc/device-tree/chosen/bootloader/partition
	tryboot bool          // chosen/bootloader/tryboot
	slot    contract.Slot // from cmdline.txt
	cmdline string
	kernel  string
	initrd  string // "" without an initramfs
	// fellBack: the flag was set, the tryboot partition did not boot, and
	// the board came back without the flag (the firmware cleared it
	// before it tried) to the default.
	fellBack bool
}

// simSettings applies a config file's lines as the firmware does: "[x]"
// filters, "key=value" settings (the last applied wins) and the
// "initramfs FILE ADDR" form. In autoboot.txt only [all], [none] and
// [tryboot] are filters the firmware knows; any other, as [pi4] there, is
// taken as a filter that does not match (the safe reading: the firmware
// documents no others there).
func simSettings(data []byte, model string, flag, autoboot bool) map[string]string {
	set := map[string]string{}
	conds := map[string]bool{} // filter type → passes; all must pass
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		if len(line) > 98 {
			line = line[:98] // the firmware ignores what is past its limit
		}
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		if line[0] == '[' && strings.HasSuffix(line, "]") {
			switch f := line[1 : len(line)-1]; {
			case f == "all":
				conds = map[string]bool{}
			case f == "none":
				conds["none"] = false
			case f == "tryboot":
				conds["tryboot"] = flag
			case autoboot:
				conds["unsupported"] = false
			case strings.HasPrefix(f, "pi"):
				// Model filters of one type replace each other.
				conds["model"] = f == model
			default:
				conds[f] = false // EDID, serial, GPIO: none match here
			}
			continue
		}
		applies := true
		for _, ok := range conds {
			applies = applies && ok
		}
		if !applies {
			continue
		}
		if v, ok := strings.CutPrefix(line, "initramfs "); ok {
			set["initramfs"] = strings.TrimSpace(v)
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			set[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return set
}

// simPartition reads autoboot.txt (at most 512 bytes of it) from partition
// 1 and returns the partition to boot (0: none given, the firmware's
// "default", which on this card is CAIRN-AUTO: nothing to boot) and
// tryboot_a_b.
func simPartition(card simCard, model string, flag bool) (part int, ab bool) {
	data, err := card[1].ReadFile("autoboot.txt")
	if err != nil {
		return 0, false
	}
	if len(data) > 512 {
		data = data[:512]
	}
	set := simSettings(data, model, flag, true)
	n := 0
	for _, c := range set["boot_partition"] {
		if c < '0' || c > '9' {
			n = 0
			break
		}
		n = n*10 + int(c-'0')
	}
	return n, set["tryboot_a_b"] == "1"
}

// simBoot is the firmware of a Raspberry Pi model ("pi4" or "pi5")
// booting card, with the one-shot tryboot flag set or not: it clears the
// flag, picks the partition from autoboot.txt, checks the partition is
// bootable (start4.elf on a Pi 4, config.txt on a Pi 5), reads config.txt
// (tryboot.txt with the flag and without tryboot_a_b=1), loads the kernel
// and initramfs it names (default kernel names when it names none) and
// cmdline.txt, and returns the slot of the command line's slot option. If
// the flag was set and that fails, the board comes back (a hang, a reset)
// without the flag; without the flag, a failure is a brick: an error.
func simBoot(card simCard, model string, flag bool) (simBooted, error) {
	b, err := simTry(card, model, flag)
	if err != nil && flag {
		b, err = simTry(card, model, false)
		b.fellBack = true
	}
	return b, err
}

func simTry(card simCard, model string, flag bool) (simBooted, error) {
	part, ab := simPartition(card, model, flag)
	fsys, ok := card[part]
	if !ok || part == 1 {
		return simBooted{}, fmt.Errorf("boot_partition %d: no boot partition (autoboot.txt missing or damaged)", part)
	}
	exists := func(name string) bool { _, err := fsys.ReadFile(name); return err == nil }
	switch model {
	case "pi4":
		if !exists("start4.elf") {
			return simBooted{}, fmt.Errorf("partition %d: no start4.elf: not bootable", part)
		}
	case "pi5":
		if !exists("config.txt") {
			return simBooted{}, fmt.Errorf("partition %d: no config.txt: not bootable on a Pi 5", part)
		}
	}
	confName := "config.txt"
	if flag && !ab {
		confName = "tryboot.txt"
	}
	conf, err := fsys.ReadFile(confName)
	if err != nil && model == "pi5" {
		return simBooted{}, fmt.Errorf("partition %d: no %s", part, confName)
	}
	set := simSettings(conf, model, flag, false)
	kernel := set["kernel"]
	if kernel == "" {
		kernel = map[string]string{"pi4": "kernel8.img", "pi5": "kernel_2712.img"}[model]
	}
	out := simBooted{part: part, tryboot: flag}
	k, err := fsys.ReadFile(strings.TrimPrefix(kernel, "/"))
	if err != nil {
		return simBooted{}, fmt.Errorf("partition %d: kernel %s: %v", part, kernel, err)
	}
	out.kernel = string(k)
	if v := set["initramfs"]; v != "" {
		names, _, _ := strings.Cut(v, " ")
		for _, n := range strings.Split(names, ",") {
			data, err := fsys.ReadFile(strings.TrimPrefix(n, "/"))
			if err != nil {
				return simBooted{}, fmt.Errorf("partition %d: initramfs %s: %v", part, n, err)
			}
			out.initrd += string(data)
		}
	}
	cmdName := set["cmdline"]
	if cmdName == "" {
		cmdName = "cmdline.txt"
	}
	cmd, err := fsys.ReadFile(cmdName)
	if err != nil {
		return simBooted{}, fmt.Errorf("partition %d: %s: %v", part, cmdName, err)
	}
	out.cmdline, _, _ = strings.Cut(string(cmd), "\n")
	for _, o := range strings.Fields(out.cmdline) {
		if s, ok := strings.CutPrefix(o, contract.SlotParam+"="); ok {
			if out.slot, err = contract.ParseSlot(s); err != nil {
				return simBooted{}, err
			}
		}
	}
	if out.slot == "" {
		return simBooted{}, fmt.Errorf("partition %d: no slot on the command line %q: cairn-init finds no root", part, out.cmdline)
	}
	return out, nil
}

// errCut is the power going off.
var errCut = errors.New("power cut")

// power counts the card's mutations and cuts after left of them: every
// later mutation, on any partition, fails with errCut and changes nothing.
// left < 0 never cuts. A WriteFile, Remove or Overwrite is done whole or
// not at all, as the FS and Overwriter contracts say.
type power struct {
	left int
	log  []string
}

func (p *power) mutate(what string) error {
	if p.left == 0 {
		return errCut
	}
	p.left--
	p.log = append(p.log, what)
	return nil
}

// cutFS is one partition behind the power. With tornRename (CAIRN-AUTO),
// a WriteFile over an existing file is two mutations, a removal and a
// write, as a FAT rename is not atomic: a cut in between leaves no file
// (the FS contract promises more, which the boot partitions get; the
// firmware reading autoboot.txt by its name is where a lost one bricks).
type cutFS struct {
	bootloader.FS
	label      string
	p          *power
	tornRename bool
}

func (c *cutFS) WriteFile(name string, r io.Reader) error {
	if _, err := c.FS.ReadFile(name); err == nil && c.tornRename {
		if err := c.Remove(name); err != nil {
			return err
		}
	}
	if err := c.p.mutate("write " + c.label + "/" + name); err != nil {
		return err
	}
	return c.FS.WriteFile(name, r)
}

func (c *cutFS) Remove(name string) error {
	if err := c.p.mutate("remove " + c.label + "/" + name); err != nil {
		return err
	}
	return c.FS.Remove(name)
}

func (c *cutFS) Overwrite(name string, data []byte) error {
	if err := c.p.mutate("overwrite " + c.label + "/" + name); err != nil {
		return err
	}
	return c.FS.(bootloader.Overwriter).Overwrite(name, data)
}
