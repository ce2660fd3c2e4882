package firmware

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/bootloader/tryboot"
	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/builder/disk"
	"github.com/cairn-edge/cairn/builder/fstree"
	"github.com/cairn-edge/cairn/builder/spec"
)

// dtbDir is where a kernel image holds its device trees (as
// builder/scripts/debian-inputs.sh packs Debian's), and overlays below it.
const (
	dtbDir     = "boot/dtbs"
	overlayDir = "overlays"
)

// rpi is the family of the Raspberry Pi 4 and 5, whose firmware (in the
// boot ROM, the EEPROM and start*.elf) boots one of two FAT boot
// partitions by tryboot (agent/bootloader/tryboot).
type rpi struct {
	arch string
	// files are the board's files on a boot partition: name there → host path.
	files map[string]string
	// config is the board's and the spec's config.txt, with a dtoverlay=
	// line per overlay.
	config []byte
}

func newRPi(img *spec.Image, in Inputs) (Part, error) {
	b, r := img.Board, img.RPi
	if r == nil {
		return nil, fmt.Errorf("%s: firmware rpi needs an rpi section (dtbs, firmware, config)", b.File())
	}
	p := &rpi{arch: b.Arch, files: map[string]string{}}
	if r.Firmware.Ref != "" {
		if in.Firmware == nil {
			return nil, fmt.Errorf("%s: the firmware image %s is not resolved (a bug)", r.Firmware.From, r.Firmware.Ref)
		}
		for i, f := range r.FirmwareFiles {
			host, err := in.Firmware.HostPath(path.Join(r.FirmwareDir, f))
			if err != nil {
				about := ""
				if r.FirmwareAbout != "" {
					about = " (" + r.FirmwareAbout + ")"
				}
				return nil, fmt.Errorf("%s: %s is not in %s%s: %v", r.FirmwareFrom[i], path.Join(r.FirmwareDir, f), r.Firmware.Ref, about, notExist(err))
			}
			p.files[path.Base(f)] = host
		}
	}
	for i, d := range r.DTBs {
		host, err := in.Kernel.HostPath(path.Join(dtbDir, d))
		if err != nil {
			return nil, fmt.Errorf("%s: the kernel image %s has no /%s/%s: %v (use a kernel image with the board's device trees, or fix rpi.dtbs)", r.DTBFrom[i], in.KernelRef, dtbDir, d, notExist(err))
		}
		p.files[path.Base(d)] = host
	}
	var config bytes.Buffer
	for _, line := range r.Config {
		config.WriteString(line + "\n")
	}
	if len(r.Overlays) > 0 {
		// Overlays apply under [all], whatever filter the lines above left open.
		config.WriteString("[all]\n")
	}
	for i, o := range r.Overlays {
		name, _, _ := strings.Cut(o, ",")
		host, err := findOverlay(in, r.FirmwareDir, name)
		if err != nil {
			return nil, fmt.Errorf("%s: overlay %s: %v", r.OverlayFrom[i], name, err)
		}
		p.files[overlayDir+"/"+name+".dtbo"] = host
		config.WriteString("dtoverlay=" + o + "\n")
	}
	p.config = config.Bytes()
	return p, nil
}

// findOverlay finds NAME.dtbo in the kernel image's /boot/dtbs/overlays,
// else in the firmware image's overlays/.
func findOverlay(in Inputs, fwDir, name string) (string, error) {
	file := name + ".dtbo"
	host, err := in.Kernel.HostPath(path.Join(dtbDir, overlayDir, file))
	if err == nil || in.Firmware == nil {
		if err != nil {
			return "", fmt.Errorf("the kernel image %s has no /%s: %v (use a kernel image that carries it, or leave the overlay out)", in.KernelRef, path.Join(dtbDir, overlayDir, file), notExist(err))
		}
		return host, nil
	}
	if host, ferr := in.Firmware.HostPath(path.Join(fwDir, overlayDir, file)); ferr == nil {
		return host, nil
	}
	return "", fmt.Errorf("neither the kernel image %s (/%s) nor the firmware image (%s) has it: use images that carry it, or leave the overlay out", in.KernelRef, path.Join(dtbDir, overlayDir, file), path.Join(fwDir, overlayDir, file))
}

// notExist words a missing file's error briefly.
func notExist(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return errors.New("no such file")
	}
	return err
}

var _ BoardFiler = (*rpi)(nil)

func (p *rpi) Family() string { return "rpi" }

// Layout is disk.PlanRPi: CAIRN-AUTO, BOOT-A, BOOT-B (disk.espSize each)
// in the GPT and a hybrid MBR, then the slots and CAIRN-DATA.
func (p *rpi) Layout(seed string, s disk.Sizes) (disk.Layout, error) {
	return disk.PlanRPi(p.arch, seed, s)
}

// BootPartitions are a fresh card's three FAT partitions as tryboot's
// NewCard lays them down: CAIRN-AUTO's autoboot.txt committing slot a,
// BOOT-A with slot a installed (the board's files, config.txt,
// cmdline.txt, kernel, initramfs, stamp), BOOT-B empty.
func (p *rpi) BootPartitions(b Boot, initrd []byte) (map[string]*fstree.Tree, error) {
	files, err := openBoot(b, initrd, "", p)
	if err != nil {
		return nil, err
	}
	defer files.Close()
	card, err := tryboot.NewCard(files.BootFiles)
	if err != nil {
		return nil, fmt.Errorf("boot partitions: %w", err)
	}
	out := map[string]*fstree.Tree{contract.RPiAutoLabel: fstree.New()}
	if err := copyMem(out[contract.RPiAutoLabel], card.Auto); err != nil {
		return nil, err
	}
	for _, s := range contract.Slots {
		t := fstree.New()
		if err := copyMem(t, card.Boot[s]); err != nil {
			return nil, err
		}
		out[s.RPiBootLabel()] = t
	}
	return out, nil
}

// BoardFiles implements BoardFiler: the firmware, DTBs and overlays the
// board and spec name, and their config.txt, as BootPartitions writes
// them onto BOOT-A and the update artifact carries them.
func (p *rpi) BoardFiles() ([]BoardFile, error) {
	out := []BoardFile{{Name: contract.RPiConfigFile, Data: p.config}}
	for name, host := range p.files {
		b, err := os.ReadFile(host)
		if err != nil {
			return nil, fmt.Errorf("board file %s: %w", name, err)
		}
		out = append(out, BoardFile{Name: name, Data: b})
	}
	slices.SortFunc(out, func(a, b BoardFile) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func copyMem(t *fstree.Tree, m *bootloader.MemFS) error {
	return m.Walk(func(name string, data []byte) error { return t.File(name, 0o644, data) })
}
