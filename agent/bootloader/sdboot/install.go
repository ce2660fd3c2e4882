package sdboot

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/contract"
)

// Install implements bootloader.Bootloader: it removes slot's entries and
// staged entry, writes its kernel and initramfs to contract.Slot.BootDir,
// loader.conf if it is missing or differs, and the staged entry last.
func (l *Loader) Install(slot contract.Slot, files bootloader.BootFiles) error {
	content, err := render(slot, files)
	if err != nil {
		return err
	}
	es, err := l.entries()
	if err != nil {
		return err
	}
	if len(es) > 0 {
		if es[0].Slot == slot && !es[0].Counting {
			return fmt.Errorf("installing slot %s: it is the committed default (%s), the slot that boots; install into slot %s", slot, es[0].file, slot.Other())
		}
		if _, ok := committed(es, slot.Other()); !ok {
			return fmt.Errorf("installing slot %s: slot %s has no committed entry in %s, so nothing would be left to boot; commit slot %s first", slot, slot.Other(), contract.ESPEntriesDir, slot.Other())
		}
	}
	if err := l.removeEntries(es, slot); err != nil {
		return err
	}
	staged := stagedEntry(slot)
	if err := l.fs.Remove(staged); err != nil {
		return fmt.Errorf("removing %s: %w", staged, err)
	}
	dir := slot.BootDir()
	if err := l.fs.WriteFile(path.Join(dir, contract.KernelFile), files.Kernel); err != nil {
		return err
	}
	initrd := path.Join(dir, contract.InitrdFile)
	if files.Initrd != nil {
		err = l.fs.WriteFile(initrd, files.Initrd)
	} else {
		err = l.fs.Remove(initrd)
	}
	if err != nil {
		return err
	}
	if err := l.ensureLoaderConf(); err != nil {
		return err
	}
	if err := l.fs.WriteFile(staged, bytes.NewReader(content)); err != nil {
		return err
	}
	l.log.Info("boot files installed", "slot", slot, "version", files.Version)
	return nil
}

// render is slot's entry content for files. Values go on one line each, so
// a newline in one would add keys: refuse it.
func render(slot contract.Slot, files bootloader.BootFiles) ([]byte, error) {
	if files.Kernel == nil {
		return nil, fmt.Errorf("installing slot %s: no kernel (set BootFiles.Kernel)", slot)
	}
	if len(files.Files) > 0 {
		return nil, fmt.Errorf("installing slot %s: %d board files (%s first): systemd-boot has no boot partition per slot to copy them to, only the ESP's kernel and initramfs (leave BootFiles.Files empty on a UEFI board)", slot, len(files.Files), files.Files[0].Name)
	}
	for _, a := range files.Cmdline {
		if strings.HasPrefix(a, contract.SlotParam+"=") {
			return nil, fmt.Errorf("installing slot %s: the kernel command line already names a slot (%q): leave it out, Install adds it", slot, a)
		}
	}
	e := Entry{
		Slot:    slot,
		Title:   files.Title,
		Version: files.Version,
		Linux:   bootPath(slot, contract.KernelFile),
		Options: strings.Join(append(append([]string{}, files.Cmdline...), contract.SlotOption(slot)), " "),
	}
	if files.Initrd != nil {
		e.Initrd = bootPath(slot, contract.InitrdFile)
	}
	for _, kv := range [][2]string{{"title", e.Title}, {"version", e.Version}, {"command line", e.Options}} {
		if strings.ContainsAny(kv[1], "\r\n\x00") {
			return nil, fmt.Errorf("installing slot %s: the %s %q has a line break or NUL; an entry holds one line per key", slot, kv[0], kv[1])
		}
	}
	return e.Render(), nil
}

// ensureLoaderConf writes loader.conf if it is missing or differs (an image
// from before it was fixed), and leaves it alone otherwise.
func (l *Loader) ensureLoaderConf() error {
	b, err := l.fs.ReadFile(contract.ESPLoaderConf)
	if err == nil && bytes.Equal(b, LoaderConf()) {
		return nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("reading %s: %w", contract.ESPLoaderConf, err)
	}
	return l.fs.WriteFile(contract.ESPLoaderConf, bytes.NewReader(LoaderConf()))
}
