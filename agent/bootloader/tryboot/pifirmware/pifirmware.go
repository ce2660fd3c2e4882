// Package pifirmware plays the Raspberry Pi firmware's part in tests: it
// reads an SD card's autoboot.txt, config.txt and cmdline.txt as the Pi 4
// and Pi 5 firmware do, picks the boot partition (tryboot's A/B), and
// loads what the firmware would hand the kernel.
//
// It is written from the Raspberry Pi documentation (config_txt/
// autoboot.adoc, conditional.adoc, boot.adoc, what_is_config_txt.adoc) and
// independent of agent/bootloader/tryboot's code on purpose: its own
// parser of autoboot.txt and config.txt, with the conditional filters, so
// that a file the boot loader writes and the firmware reads differently
// shows. tryboot's power-cut scenarios judge every state with Boot, and
// qemu-tests boots the kernel it loads on QEMU's raspi3b.
package pifirmware

import (
	"fmt"
	"strings"

	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/contract"
)

// Card is an SD card as the firmware sees it: FAT partitions by their MBR
// number (1 CAIRN-AUTO, 2 BOOT-A, 3 BOOT-B, as tryboot lays them out).
type Card map[int]bootloader.FS

// Booted is what the firmware booted.
type Booted struct {
	// Partition is the partition booted, as the firmware reports it in
	// /proc/device-tree/chosen/bootloader/partition.
	Partition int
	// Tryboot is the flag this boot was asked with
	// (chosen/bootloader/tryboot, unless FellBack).
	Tryboot bool
	// Slot is the slot cmdline.txt's slot option names.
	Slot contract.Slot
	// Cmdline is cmdline.txt's first line.
	Cmdline string
	// Kernel and Initrd are the loaded files (Initrd nil without an
	// initramfs; several initramfs files are concatenated, as the
	// firmware loads them).
	Kernel, Initrd []byte
	// DTBName and DTB are the device tree loaded: config.txt's
	// device_tree, else the model's own; DTB is nil if the partition does
	// not hold it (the firmware then boots without one).
	DTBName string
	DTB     []byte
	// FellBack is true when the flag was set, the tryboot partition did
	// not boot, and the board came back without the flag (the firmware
	// cleared it before it tried) to the default.
	FellBack bool
}

// modelDTB is the device tree each model's firmware loads when config.txt
// names none.
var modelDTB = map[string]string{"pi4": "bcm2711-rpi-4-b.dtb", "pi5": "bcm2712-rpi-5-b.dtb"}

// Settings applies a config file's lines as the firmware does: "[x]"
// filters, "key=value" settings (the last applied wins) and the
// "initramfs FILE ADDR" form. model ("pi4", "pi5") is the board, flag the
// tryboot flag. In autoboot.txt only [all], [none] and [tryboot] are
// filters the firmware knows; any other, as [pi4] there, is taken as a
// filter that does not match (the safe reading: the firmware documents no
// others there).
func Settings(data []byte, model string, flag, autoboot bool) map[string]string {
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

// Partition reads autoboot.txt (at most 512 bytes of it) from partition 1
// and returns the partition to boot (0: none given, the firmware's
// "default", which on Cairn's card is CAIRN-AUTO: nothing to boot) and
// tryboot_a_b.
func Partition(card Card, model string, flag bool) (part int, ab bool) {
	if card[1] == nil {
		return 0, false
	}
	data, err := card[1].ReadFile(contract.RPiAutobootFile)
	if err != nil {
		return 0, false
	}
	if len(data) > contract.RPiAutobootSize {
		data = data[:contract.RPiAutobootSize]
	}
	set := Settings(data, model, flag, true)
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

// Boot is the firmware of a Raspberry Pi model ("pi4" or "pi5") booting
// card, with the one-shot tryboot flag set or not: it clears the flag,
// picks the partition from autoboot.txt, checks the partition is bootable
// (start4.elf on a Pi 4, config.txt on a Pi 5), reads config.txt
// (tryboot.txt with the flag and without tryboot_a_b=1), loads the kernel,
// initramfs and device tree it names (default names when it names none)
// and cmdline.txt, and returns the slot of the command line's slot option.
// If the flag was set and that fails, the board comes back (a hang, a
// reset) without the flag; without the flag, a failure is a brick: an
// error.
func Boot(card Card, model string, flag bool) (Booted, error) {
	b, err := try(card, model, flag)
	if err != nil && flag {
		b, err = try(card, model, false)
		b.FellBack = true
	}
	return b, err
}

func try(card Card, model string, flag bool) (Booted, error) {
	part, ab := Partition(card, model, flag)
	fsys, ok := card[part]
	if !ok || part == 1 {
		return Booted{}, fmt.Errorf("boot_partition %d: no boot partition (autoboot.txt missing or damaged)", part)
	}
	exists := func(name string) bool { _, err := fsys.ReadFile(name); return err == nil }
	switch model {
	case "pi4":
		if !exists("start4.elf") {
			return Booted{}, fmt.Errorf("partition %d: no start4.elf: not bootable", part)
		}
	case "pi5":
		if !exists("config.txt") {
			return Booted{}, fmt.Errorf("partition %d: no config.txt: not bootable on a Pi 5", part)
		}
	default:
		return Booted{}, fmt.Errorf("model %q: the firmware of pi4 or pi5", model)
	}
	confName := "config.txt"
	if flag && !ab {
		confName = "tryboot.txt"
	}
	conf, err := fsys.ReadFile(confName)
	if err != nil && model == "pi5" {
		return Booted{}, fmt.Errorf("partition %d: no %s", part, confName)
	}
	set := Settings(conf, model, flag, false)
	kernel := set["kernel"]
	if kernel == "" {
		kernel = map[string]string{"pi4": "kernel8.img", "pi5": "kernel_2712.img"}[model]
	}
	out := Booted{Partition: part, Tryboot: flag}
	if out.Kernel, err = fsys.ReadFile(strings.TrimPrefix(kernel, "/")); err != nil {
		return Booted{}, fmt.Errorf("partition %d: kernel %s: %v", part, kernel, err)
	}
	if v := set["initramfs"]; v != "" {
		names, _, _ := strings.Cut(v, " ")
		for _, n := range strings.Split(names, ",") {
			data, err := fsys.ReadFile(strings.TrimPrefix(n, "/"))
			if err != nil {
				return Booted{}, fmt.Errorf("partition %d: initramfs %s: %v", part, n, err)
			}
			out.Initrd = append(out.Initrd, data...)
		}
	}
	out.DTBName = strings.TrimPrefix(set["device_tree"], "/")
	if out.DTBName == "" {
		out.DTBName = modelDTB[model]
	}
	out.DTB, _ = fsys.ReadFile(out.DTBName)
	cmdName := set["cmdline"]
	if cmdName == "" {
		cmdName = "cmdline.txt"
	}
	cmd, err := fsys.ReadFile(cmdName)
	if err != nil {
		return Booted{}, fmt.Errorf("partition %d: %s: %v", part, cmdName, err)
	}
	out.Cmdline, _, _ = strings.Cut(string(cmd), "\n")
	for _, o := range strings.Fields(out.Cmdline) {
		if s, ok := strings.CutPrefix(o, contract.SlotParam+"="); ok {
			if out.Slot, err = contract.ParseSlot(s); err != nil {
				return Booted{}, err
			}
		}
	}
	if out.Slot == "" {
		return Booted{}, fmt.Errorf("partition %d: no slot on the command line %q: cairn-init finds no root", part, out.Cmdline)
	}
	return out, nil
}
