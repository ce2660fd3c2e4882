package tryboot

import (
	"bytes"
	"fmt"

	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/contract"
)

// Install implements bootloader.Bootloader. On slot's boot partition it
// removes the stamp, then config.txt, so that the firmware finds no kernel
// there while the files are mixed, writes the kernel, the initramfs (or
// removes an old one), cmdline.txt and the board's files, then config.txt,
// and the stamp last.
func (l *Loader) Install(slot contract.Slot, files bootloader.BootFiles) error {
	p, err := makePlan(slot, files)
	if err != nil {
		return err
	}
	ab, _, ok, err := l.autoboot()
	if err != nil {
		return fmt.Errorf("installing slot %s: %w", slot, err)
	}
	if ok {
		if ab.Default == slot {
			return fmt.Errorf("installing slot %s: it is the committed default (%s's %s boots partition %d), the slot that boots; install into slot %s", slot, contract.RPiAutoLabel, contract.RPiAutobootFile, slot.RPiBootPartition(), slot.Other())
		}
		if _, err := l.installed(ab.Default); err != nil {
			return fmt.Errorf("installing slot %s: the default slot %s is not complete, so nothing would be left to boot: %w", slot, ab.Default, err)
		}
	}
	fsys, label := l.boot[slot], slot.RPiBootLabel()
	for _, name := range []string{contract.RPiStampFile, contract.RPiConfigFile} {
		if err := fsys.Remove(name); err != nil {
			return fmt.Errorf("installing slot %s: removing %s's %s: %w", slot, label, name, err)
		}
	}
	if err := fsys.WriteFile(contract.RPiKernelFile, p.kernel); err != nil {
		return fmt.Errorf("installing slot %s: %w", slot, err)
	}
	if p.initrd != nil {
		err = fsys.WriteFile(contract.RPiInitrdFile, p.initrd)
	} else {
		err = fsys.Remove(contract.RPiInitrdFile)
	}
	if err != nil {
		return fmt.Errorf("installing slot %s: %w", slot, err)
	}
	if err := fsys.WriteFile(contract.RPiCmdlineFile, bytes.NewReader(p.cmdline)); err != nil {
		return fmt.Errorf("installing slot %s: %w", slot, err)
	}
	for _, f := range p.files {
		if err := fsys.WriteFile(f.Name, f.Data); err != nil {
			return fmt.Errorf("installing slot %s: board file %s: %w", slot, f.Name, err)
		}
	}
	if err := fsys.WriteFile(contract.RPiConfigFile, bytes.NewReader(p.config)); err != nil {
		return fmt.Errorf("installing slot %s: %w", slot, err)
	}
	if err := fsys.WriteFile(contract.RPiStampFile, bytes.NewReader(p.stamp.render())); err != nil {
		return fmt.Errorf("installing slot %s: %w", slot, err)
	}
	l.log.Info("boot files installed", "slot", slot, "partition", label, "version", files.Version)
	return nil
}
