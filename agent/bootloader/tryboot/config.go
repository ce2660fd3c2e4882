package tryboot

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/contract"
)

// plan is what Install writes on a slot's boot partition, checked before
// the first write.
type plan struct {
	stamp   stamp
	kernel  io.Reader
	initrd  io.Reader // nil: no initramfs
	cmdline []byte
	files   []bootloader.File // the board's, config.txt left out
	config  []byte            // the board's config.txt and Install's lines
}

// reserved are the names Install writes itself (FAT folds case), and
// CAIRN-AUTO's autoboot.txt: one on a boot partition means a mix-up.
var reserved = func() map[string]bool {
	m := map[string]bool{}
	for _, name := range contract.RPiLoaderFiles {
		m[strings.ToLower(name)] = true
	}
	return m
}()

// makePlan checks files for slot and composes cmdline.txt and config.txt.
// It reads the board's config.txt; the other files are read when written.
func makePlan(slot contract.Slot, files bootloader.BootFiles) (plan, error) {
	if files.Kernel == nil {
		return plan{}, fmt.Errorf("installing slot %s: no kernel (set BootFiles.Kernel)", slot)
	}
	if strings.ContainsAny(files.Version, "\r\n\x00") {
		return plan{}, fmt.Errorf("installing slot %s: the version %q has a line break or NUL", slot, files.Version)
	}
	p := plan{stamp: stamp{Slot: slot, Version: files.Version}, kernel: files.Kernel, initrd: files.Initrd}
	var err error
	if p.cmdline, err = cmdline(slot, files.Cmdline); err != nil {
		return plan{}, err
	}
	if len(files.Files) == 0 {
		return plan{}, fmt.Errorf("installing slot %s: no board files (firmware, DTBs, config.txt): the partition would not boot; an update artifact for a Raspberry Pi carries them, so rebuild and push it with a Cairn that does", slot)
	}
	var board []byte
	seen := map[string]string{}
	for _, f := range files.Files {
		lower := strings.ToLower(f.Name)
		switch {
		case !fs.ValidPath(f.Name) || f.Name == ".":
			return plan{}, fmt.Errorf("installing slot %s: board file %q is not a relative slash-separated path", slot, f.Name)
		case strings.HasPrefix(path.Base(f.Name), "."):
			return plan{}, fmt.Errorf("installing slot %s: board file %q is dot-named, as the boot media's temporary files are", slot, f.Name)
		case reserved[lower]:
			return plan{}, fmt.Errorf("installing slot %s: board file %q is a file Install writes itself; leave it out", slot, f.Name)
		case seen[lower] != "":
			return plan{}, fmt.Errorf("installing slot %s: board files %q and %q are one file on FAT, which ignores case", slot, seen[lower], f.Name)
		case f.Data == nil:
			return plan{}, fmt.Errorf("installing slot %s: board file %q has no content (set its Data)", slot, f.Name)
		}
		seen[lower] = f.Name
		if lower == contract.RPiConfigFile {
			if board, err = io.ReadAll(f.Data); err != nil {
				return plan{}, fmt.Errorf("installing slot %s: reading the board's %s: %w", slot, f.Name, err)
			}
			continue
		}
		p.files = append(p.files, f)
	}
	if p.config, err = configTxt(slot, board, files.Initrd != nil); err != nil {
		return plan{}, err
	}
	return p, nil
}

// cmdline is cmdline.txt: the kernel's command line and the slot's option,
// one line (the firmware reads the first).
func cmdline(slot contract.Slot, args []string) ([]byte, error) {
	for _, a := range args {
		if strings.HasPrefix(a, contract.SlotParam+"=") {
			return nil, fmt.Errorf("installing slot %s: the kernel command line already names a slot (%q): leave it out, Install adds it", slot, a)
		}
		if strings.ContainsAny(a, "\r\n\x00") {
			return nil, fmt.Errorf("installing slot %s: the kernel command line's %q has a line break or NUL; cmdline.txt is one line", slot, a)
		}
	}
	return []byte(strings.Join(append(append([]string{}, args...), contract.SlotOption(slot)), " ") + "\n"), nil
}

// owned are config.txt's settings that choose which files boot: Install
// writes the ones it needs and refuses them in the board's config.txt, so
// that config.txt names only files Install wrote.
var owned = map[string]string{
	"kernel":          "Install writes kernel=",
	"initramfs":       "Install writes initramfs ... followkernel",
	"ramfsfile":       "Install writes initramfs ... followkernel",
	"cmdline":         "Install writes cmdline=",
	"os_prefix":       "it moves the kernel Install names",
	"upstream_kernel": "it sets os_prefix",
	"include":         "an included file could name other boot files",
	"auto_initramfs":  "it loads an initramfs named after the kernel",
}

// CheckConfigLine checks one line of a board's config.txt: it must not
// choose boot files (Install writes those settings) nor turn arm_64bit off.
// The builder checks a board's and a spec's lines with it before a build.
func CheckConfigLine(line string) error {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
		return nil
	}
	// "initramfs FILE ADDR" has no "="; everything else is key=value.
	key, value, _ := strings.Cut(line, "=")
	if k, _, ok := strings.Cut(key, " "); ok {
		key = k
	}
	key = strings.ToLower(strings.TrimSpace(key))
	if why, ok := owned[key]; ok {
		return fmt.Errorf("%q chooses boot files (%s): take it out of the board's config.txt", line, why)
	}
	if key == "arm_64bit" && strings.TrimSpace(value) != "1" {
		return fmt.Errorf("%q: Cairn's kernels are 64-bit (Install writes arm_64bit=1)", line)
	}
	return nil
}

// configTxt is the slot's config.txt: the board's settings, then an [all]
// section (whatever filter the board left open) naming Install's files.
func configTxt(slot contract.Slot, board []byte, initrd bool) ([]byte, error) {
	name := "the board's " + contract.RPiConfigFile
	if bytes.IndexByte(board, 0) >= 0 {
		return nil, fmt.Errorf("installing slot %s: %s has a NUL byte: not text", slot, name)
	}
	for i, line := range strings.Split(string(board), "\n") {
		if err := CheckConfigLine(line); err != nil {
			return nil, fmt.Errorf("installing slot %s: %s:%d: %w", slot, name, i+1, err)
		}
	}
	var b bytes.Buffer
	b.Write(board)
	if len(board) > 0 && board[len(board)-1] != '\n' {
		b.WriteByte('\n')
	}
	b.Write(configTail(slot, initrd))
	return b.Bytes(), nil
}

// configTail is what configTxt adds after the board's config.txt.
func configTail(slot contract.Slot, initrd bool) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "[all]\n# Cairn: slot %s's boot files, as its install wrote them.\narm_64bit=1\nkernel=%s\n", slot, contract.RPiKernelFile)
	if initrd {
		fmt.Fprintf(&b, "initramfs %s followkernel\n", contract.RPiInitrdFile)
	}
	fmt.Fprintf(&b, "cmdline=%s\n", contract.RPiCmdlineFile)
	return b.Bytes()
}

// boardConfig undoes configTxt: the board's config.txt inside slot's
// config.txt, if Install wrote it (a board file that did not end in a
// line break gets one).
func boardConfig(slot contract.Slot, composed []byte) ([]byte, bool) {
	for _, initrd := range []bool{true, false} {
		if board, ok := bytes.CutSuffix(composed, configTail(slot, initrd)); ok {
			return board, true
		}
	}
	return nil, false
}
