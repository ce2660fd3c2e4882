// Package picard boots a Raspberry Pi SD card image (firmware rpi: the
// Pi 4's card, tryboot A/B) on QEMU's raspi3b, the Pi firmware's part
// played on the host by agent/bootloader/tryboot/pifirmware: each boot
// reads the card's autoboot.txt with the one-shot tryboot flag as the last
// boot left it, loads the chosen partition's kernel, initramfs, command
// line and device tree, and tells the kernel in the device tree which
// partition it booted and whether it was a tryboot, as the firmware does.
//
// The firmware played is the Pi 4's, whose tryboot Cairn's card uses; the
// board QEMU emulates is a Pi 3 (BCM2837), whose own firmware has no
// tryboot. QEMU runs with -no-reboot, so every boot is its own QEMU and
// the firmware's choice is made again, as on the board.
package picard

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/diskfs/go-diskfs/partition/mbr"
	"github.com/u-root/u-root/pkg/dt"

	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/bootloader/tryboot/pifirmware"
	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/qemu-tests/qemu"
)

// Model is the firmware played: the Pi 4's.
const Model = "pi4"

// SDSize is a size for the card: QEMU's SD card must be a power of two,
// and this one holds any image the tests build.
const SDSize = 2 << 30

// Card is an SD card image, booted as a Raspberry Pi boots it.
type Card struct {
	// Disk is the image, written by the guest: the caller's own copy.
	Disk string
	// Tryboot is the firmware's one-shot flag: set by a reboot with
	// "0 tryboot" (Rebooted), cleared by the next Boot.
	Tryboot bool
}

// Boot plays the firmware: it reads the card, picks the partition with
// the flag, clears the flag, writes the kernel, initramfs and device tree
// into dir, and returns the options that boot them on raspi3b from the
// card, and what the firmware booted.
func (c *Card) Boot(dir string) ([]qemu.Option, pifirmware.Booted, error) {
	card, err := c.read(dir)
	if err != nil {
		return nil, pifirmware.Booted{}, err
	}
	b, err := pifirmware.Boot(card, Model, c.Tryboot)
	if err != nil {
		return nil, b, fmt.Errorf("the Pi firmware boots nothing (tryboot flag %v): %w", c.Tryboot, err)
	}
	c.Tryboot = false
	if b.DTB == nil {
		return nil, b, fmt.Errorf("partition %d has no device tree %s", b.Partition, b.DTBName)
	}
	dtb, err := BootRecord(b.DTB, b.Tryboot && !b.FellBack, uint32(b.Partition))
	if err != nil {
		return nil, b, fmt.Errorf("%s: %w", b.DTBName, err)
	}
	kernel, initrd, tree := filepath.Join(dir, "kernel"), filepath.Join(dir, "initrd"), filepath.Join(dir, "dtb")
	for name, data := range map[string][]byte{kernel: b.Kernel, initrd: b.Initrd, tree: dtb} {
		if err := os.WriteFile(name, data, 0o644); err != nil {
			return nil, b, err
		}
	}
	return []qemu.Option{qemu.WithRaspi3B(tree), qemu.WithKernel(kernel, initrd, b.Cmdline), qemu.WithDisk(c.Disk)}, b, nil
}

// Rebooted takes the console of a boot that ended in a reboot: the
// kernel names the argument it restarts with, and "0 tryboot"
// (contract.RPiTrybootArg) sets the flag.
func (c *Card) Rebooted(console string) {
	c.Tryboot = strings.Contains(console, "reboot: Restarting system with command '"+contract.RPiTrybootArg+"'")
}

// read copies the card's FAT partitions 1 to 3 (CAIRN-AUTO, BOOT-A,
// BOOT-B), found in its MBR as the firmware finds them, into directories
// under dir.
func (c *Card) read(dir string) (pifirmware.Card, error) {
	f, err := os.Open(c.Disk)
	if err != nil {
		return nil, err
	}
	table, err := mbr.Read(f, 512, 512)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: the firmware reads no MBR: %w", c.Disk, err)
	}
	card := pifirmware.Card{}
	for i, p := range table.Partitions {
		n := i + 1
		if n > 3 || p.Type == mbr.Empty {
			continue
		}
		d := filepath.Join(dir, fmt.Sprintf("partition%d", n))
		if err := os.RemoveAll(d); err != nil {
			return nil, err
		}
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, err
		}
		if err := ReadFAT(fmt.Sprintf("%s@@%d", c.Disk, int64(p.Start)*512), d); err != nil {
			return nil, err
		}
		card[n] = bootloader.DirFS(d)
	}
	return card, nil
}

// BootRecord adds to the device tree dtb what the firmware tells the
// booted system (contract.RPiDTTryboot, contract.RPiDTPartition): the node
// /chosen/bootloader with tryboot and partition, big-endian cells.
func BootRecord(dtb []byte, tryboot bool, partition uint32) ([]byte, error) {
	fdt, err := dt.ReadFDT(bytes.NewReader(dtb))
	if err != nil {
		return nil, err
	}
	chosen, ok := fdt.RootNode.LookupChildByName("chosen")
	if !ok {
		chosen = dt.NewNode("chosen")
		fdt.RootNode.Children = append(fdt.RootNode.Children, chosen)
	}
	flag := uint32(0)
	if tryboot {
		flag = 1
	}
	chosen.Children = append(chosen.Children, dt.NewNode("bootloader", dt.WithProperty(
		dt.PropertyU32("tryboot", flag), dt.PropertyU32("partition", partition))))
	var out bytes.Buffer
	if _, err := fdt.Write(&out); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// ReadFAT copies the FAT file system at image (mtools' FILE@@OFFSET)
// into dir, with mtools: a host may have no vfat to mount.
func ReadFAT(image, dir string) error {
	if list, err := exec.Command("mdir", "-b", "-i", image, "::/").Output(); err == nil && len(bytes.TrimSpace(list)) == 0 {
		return nil // empty: nothing to copy
	}
	return mtools("mcopy", "-s", "-n", "-i", image, "::/*", dir)
}

// WriteFAT copies dir's files onto the FAT file system at image,
// overwriting; what is not in dir stays on the file system.
func WriteFAT(image, dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := mtools("mcopy", "-s", "-o", "-n", "-i", image, filepath.Join(dir, e.Name()), "::/"); err != nil {
			return err
		}
	}
	return nil
}

func mtools(args ...string) error {
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}
