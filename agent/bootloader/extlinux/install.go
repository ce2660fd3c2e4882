package extlinux

import (
	"bytes"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/contract"
)

// plan is what Install writes in a slot's directory, checked before the
// first write.
type plan struct {
	label  Label
	stamp  []byte // the label's sector
	kernel io.Reader
	initrd io.Reader // nil: no initramfs
	files  []bootloader.File
}

// reserved are the names Install writes itself (FAT folds case).
var reserved = map[string]bool{
	contract.KernelFile:        true,
	contract.InitrdFile:        true,
	contract.ExtlinuxStampName: true,
}

// makePlan checks files for slot and composes its label.
func makePlan(slot contract.Slot, files bootloader.BootFiles) (plan, error) {
	op := fmt.Sprintf("installing slot %s", slot)
	if files.Kernel == nil {
		return plan{}, fmt.Errorf("%s: no kernel (set BootFiles.Kernel)", op)
	}
	for _, kv := range [][2]string{{"title", files.Title}, {"version", files.Version}} {
		if err := checkLine(kv[1]); err != nil {
			return plan{}, fmt.Errorf("%s: the %s %q %v", op, kv[0], kv[1], err)
		}
	}
	p := plan{kernel: files.Kernel, initrd: files.Initrd}
	p.label = Label{Title: files.Title, Version: files.Version, Kernel: bootPath(slot, contract.KernelFile)}
	if files.Initrd != nil {
		p.label.Initrd = bootPath(slot, contract.InitrdFile)
	}
	var err error
	if p.label.Append, err = appendLine(slot, files.Cmdline); err != nil {
		return plan{}, fmt.Errorf("%s: %w", op, err)
	}
	if err := bootloader.CheckFiles(files.Files, reserved); err != nil {
		return plan{}, fmt.Errorf("%s: %w", op, err)
	}
	for _, f := range files.Files {
		if strings.HasSuffix(strings.ToLower(f.Name), ".dtb") {
			if p.label.FDT != "" {
				return plan{}, fmt.Errorf("%s: board files %s and %s are both device trees; a label boots one (FDT): give one", op, p.label.FDT, bootPath(slot, f.Name))
			}
			p.label.FDT = bootPath(slot, f.Name)
		}
		p.files = append(p.files, f)
	}
	if p.stamp, err = RenderLabel(slot, p.label); err != nil {
		return plan{}, fmt.Errorf("%s: %w: shorten the kernel command line or the title", op, err)
	}
	return p, nil
}

// checkLine refuses a value that is not one line of printable text.
func checkLine(v string) error {
	for _, c := range []byte(v) {
		if c < ' ' || c > '~' {
			return fmt.Errorf("has the byte %#02x: give printable ASCII on one line", c)
		}
	}
	return nil
}

// appendLine is the label's APPEND: the kernel command line, the flag
// that tells cairn-init to revert a trial, and the slot's option.
func appendLine(slot contract.Slot, args []string) (string, error) {
	for _, a := range args {
		switch {
		case strings.HasPrefix(a, contract.SlotParam+"="):
			return "", fmt.Errorf("the kernel command line already names a slot (%q): leave it out, Install adds it", a)
		case a == contract.ExtlinuxParam || strings.HasPrefix(a, contract.ExtlinuxParam+"="):
			return "", fmt.Errorf("the kernel command line has %q: leave it out, Install adds it", a)
		case strings.ContainsAny(a, `$\'`):
			return "", fmt.Errorf("the kernel command line's %q has $, \\ or ': U-Boot's APPEND expands $ variables and strips \\ and ', so the kernel would get another command line; leave them out", a)
		case a == "" || strings.ContainsAny(a, " \t"):
			return "", fmt.Errorf("the kernel command line's %q is not one parameter", a)
		}
		if err := checkLine(a); err != nil {
			return "", fmt.Errorf("the kernel command line's %q %v", a, err)
		}
	}
	return strings.Join(append(append([]string{}, args...), contract.ExtlinuxParam, contract.SlotOption(slot)), " "), nil
}

func hasOption(cmdline, opt string) bool {
	for _, o := range strings.Fields(cmdline) {
		if o == opt {
			return true
		}
	}
	return false
}

// Install implements bootloader.Bootloader: see the package doc for the
// order of its writes.
func (l *Loader) Install(slot contract.Slot, files bootloader.BootFiles) error {
	p, err := makePlan(slot, files)
	if err != nil {
		return err
	}
	op := fmt.Sprintf("installing slot %s", slot)
	st, err := l.read()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	good := slot.Other()
	if st.hasConf {
		if st.committed() == slot {
			return fmt.Errorf("%s: it is the committed default (%s's DEFAULT), the slot that boots; install into slot %s", op, contract.ExtlinuxConf, good)
		}
		lbl, err := l.complete(st, good)
		if err != nil {
			return fmt.Errorf("%s: the committed slot %s is not complete, so nothing would be left to boot: %w", op, good, err)
		}
		if lbl.FDT != "" && p.label.FDT == "" {
			return fmt.Errorf("%s: slot %s boots with the device tree %s, and the new boot files carry none (no .dtb among them): U-Boot would boot the new kernel with its own device tree; give the board's .dtb (an update artifact must carry it)", op, good, lbl.FDT)
		}
	}
	if err := l.unboot(&st, slot); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := l.writeFiles(slot, p); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if st.hasConf {
		if err := l.writeConf(&st, st.conf.withLabel(slot, &p.label)); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	if err := l.fs.WriteFile(stampPath(slot), bytes.NewReader(p.stamp)); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	l.log.Info("boot files installed", "slot", slot, "version", files.Version, "fdt", p.label.FDT)
	return nil
}

// writeFiles replaces the slot's kernel, initramfs and board files, and
// removes the files an earlier install left in its directory that this
// one does not write (an old device tree).
func (l *Loader) writeFiles(slot contract.Slot, p plan) error {
	dir := slot.BootDir()
	keep := map[string]bool{contract.KernelFile: true}
	if p.initrd != nil {
		keep[contract.InitrdFile] = true
	}
	for _, f := range p.files {
		keep[f.Name] = true
	}
	old, err := l.fs.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("listing %s: %w", dir, err)
	}
	for _, name := range old {
		if !keep[name] {
			if err := l.fs.Remove(path.Join(dir, name)); err != nil {
				return err
			}
		}
	}
	if err := l.fs.WriteFile(path.Join(dir, contract.KernelFile), p.kernel); err != nil {
		return err
	}
	if p.initrd != nil {
		if err := l.fs.WriteFile(path.Join(dir, contract.InitrdFile), p.initrd); err != nil {
			return err
		}
	}
	for _, f := range p.files {
		if err := l.fs.WriteFile(path.Join(dir, f.Name), f.Data); err != nil {
			return fmt.Errorf("board file %s: %w", f.Name, err)
		}
	}
	return nil
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
