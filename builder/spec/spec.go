// Package spec reads and validates image specs (images/*.yaml) and board
// definitions (boards/*.yaml), and merges the two into the Image a build uses.
//
// Decoding is strict: unknown keys, keys given twice, wrong types, missing
// required fields and impossible values are errors of the form
// "file:line: problem (the fix)".
package spec

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/cairn-edge/cairn/agent/bootloader/tryboot"
	"github.com/cairn-edge/cairn/agent/config"
	"github.com/cairn-edge/cairn/agent/sysctl"
)

// Spec is an image spec: what goes into an image, independent of the board.
type Spec struct {
	// Name names the image and its output files; lowercase letters, digits and dashes.
	Name string `yaml:"name"`
	// Version is the OS version, semantic-version style (1.2.0, 1.3.0-rc.1).
	Version string `yaml:"version"`
	// Description is free text for humans.
	Description string `yaml:"description"`
	// Kernel overrides or extends the board's kernel settings.
	Kernel SpecKernel `yaml:"kernel"`
	// Overlay lists directories, relative to the spec file, copied over the root.
	Overlay []string `yaml:"overlay"`
	// Disk sizes the partitions.
	Disk Disk `yaml:"disk"`
	// Sysctl is kernel settings, key (dotted, as sysctl(8) names it) to
	// value, which cairn-init applies at boot (agent/sysctl), e.g.
	// vm.min_free_kbytes: "8192".
	Sysctl map[string]string `yaml:"sysctl"`
	// RPi adds to a Raspberry Pi board's config.txt and overlays; boards
	// of other firmware ignore it, so that one spec serves every board.
	RPi SpecRPi `yaml:"rpi"`
	// Agent is the node agent's configuration: network, ntp, services,
	// api, kubernetes, update, firewall.
	// The builder resolves each service's image and bakes it into the slot.
	Agent config.Config `yaml:",inline"`

	file  string
	lines lines
}

// SpecKernel is the kernel part of a spec.
type SpecKernel struct {
	// Image replaces the board's kernel image reference.
	Image string `yaml:"image"`
	// Cmdline is appended to the board's kernel command line.
	Cmdline []string `yaml:"cmdline"`
	// Modules are extra kernel modules loaded at boot from the slot.
	Modules []string `yaml:"modules"`
}

// SpecRPi is what a spec adds on Raspberry Pi boards.
type SpecRPi struct {
	// Config are config.txt lines after the board's.
	Config []string `yaml:"config"`
	// Overlays are device-tree overlays after the board's (see BoardRPi.Overlays).
	Overlays []string `yaml:"overlays"`
}

// Disk sizes the GPT partitions. Zero means the default.
type Disk struct {
	// ESPSize is the EFI system partition (boot loader, kernels, initramfs
	// for both slots); on a Raspberry Pi, each slot's boot partition
	// (BOOT-A, BOOT-B: firmware, kernel, initramfs, DTBs).
	ESPSize Size `yaml:"espSize"`
	// SlotSize is each of the two root slot partitions.
	SlotSize Size `yaml:"slotSize"`
	// DataSize is CAIRN-DATA as written; it grows to fill the disk on first boot.
	DataSize Size `yaml:"dataSize"`
}

// Default partition sizes.
const (
	DefaultESPSize  = 128 * MiB
	DefaultSlotSize = 512 * MiB
	DefaultDataSize = 64 * MiB
)

// Board describes a kind of machine: its architecture, firmware, kernel and
// boot loader, and the modules it needs.
type Board struct {
	// Name is the board's name, the same as its file name without .yaml.
	Name string `yaml:"name"`
	// Description is free text for humans.
	Description string `yaml:"description"`
	// Arch is the Go architecture: amd64 or arm64.
	Arch string `yaml:"arch"`
	// Firmware is how the board boots: uefi (systemd-boot on an ESP), rpi
	// (the Raspberry Pi firmware's tryboot) or extlinux (U-Boot reading
	// extlinux.conf from the ESP; A/B by agent-side rollback only).
	Firmware string `yaml:"firmware"`
	// Kernel is the board's default kernel.
	Kernel BoardKernel `yaml:"kernel"`
	// Bootloader is the UEFI boot loader (firmware uefi).
	Bootloader Bootloader `yaml:"bootloader"`
	// RPi is the Raspberry Pi's boot files (firmware rpi).
	RPi *BoardRPi `yaml:"rpi"`
	// Extlinux is a U-Boot extlinux board's boot files (firmware extlinux).
	Extlinux *BoardExtlinux `yaml:"extlinux"`
	// Kubernetes is what the board brings to images that run the bundled
	// Kubernetes (specs with a kubernetes section); other images ignore it.
	Kubernetes *BoardKubernetes `yaml:"kubernetes"`
	// Firewall is what the board brings to images whose host firewall is
	// on (the spec's firewall, on by default with Kubernetes).
	Firewall *BoardFirewall `yaml:"firewall"`

	file  string
	lines lines
}

// BoardKernel is the kernel part of a board.
type BoardKernel struct {
	// Image is an OCI reference to an image holding /boot/vmlinuz and /lib/modules/<version>.
	Image string `yaml:"image"`
	// Cmdline is the board's kernel command line (console and the like).
	Cmdline []string `yaml:"cmdline"`
	// BootModules are loaded by the initramfs to reach the root slot (storage, filesystems).
	BootModules []string `yaml:"bootModules"`
	// Modules are loaded from the slot after the switch to it (input, network).
	Modules []string `yaml:"modules"`
	// About says what the kernel image must hold and where it comes from,
	// for the error when it cannot be resolved (a kernel the user supplies).
	About string `yaml:"about"`
}

// BoardRPi is a Raspberry Pi board's boot files, besides the kernel and
// initramfs: each slot's boot partition gets them.
type BoardRPi struct {
	// Firmware is the firmware the board's boot ROM or EEPROM loads from the
	// boot partition (start4.elf, fixup4.dat on the Pi 4); none on the Pi 5.
	Firmware *RPiFirmware `yaml:"firmware"`
	// DTBs are device trees in the kernel image, relative to its
	// /boot/dtbs (broadcom/bcm2711-rpi-4-b.dtb), copied to the boot
	// partition's root, where the firmware looks for them by name.
	DTBs []string `yaml:"dtbs"`
	// Config are config.txt lines; tryboot's install adds the ones that
	// name the kernel, initramfs and cmdline.txt.
	Config []string `yaml:"config"`
	// Overlays are device-tree overlays, NAME or NAME,PARAMS: NAME.dtbo
	// from the kernel image's /boot/dtbs/overlays (or the firmware's
	// overlays/) goes to the boot partition's overlays/, and config.txt
	// gets dtoverlay=NAME[,PARAMS].
	Overlays []string `yaml:"overlays"`
}

// BoardExtlinux is a U-Boot extlinux board's boot files, besides the
// kernel and initramfs.
type BoardExtlinux struct {
	// FDT is the device tree U-Boot loads for the kernel, in the kernel
	// image relative to its /boot/dtbs (nvidia/tegra210-p3450-0000.dtb):
	// each slot's directory on the ESP gets it, and its label's FDT line
	// names it. Empty: no FDT line, and U-Boot passes the kernel its own
	// device tree.
	FDT string `yaml:"fdt"`
}

// Firmwares are the firmware values a board may name.
var Firmwares = []string{"extlinux", "rpi", "uefi"}

// RPiFirmware is the Raspberry Pi firmware taken from an OCI image.
type RPiFirmware struct {
	// Image is an OCI reference to an image holding the firmware files.
	Image string `yaml:"image"`
	// Dir is the firmware files' folder inside the image.
	Dir string `yaml:"dir"`
	// Files are the files, relative to Dir, copied to the boot partition's root.
	Files []string `yaml:"files"`
	// About says where the image comes from, for errors about it.
	About string `yaml:"about"`
}

// Bootloader is a UEFI boot loader taken from an OCI image.
type Bootloader struct {
	// Image is an OCI reference to an image holding the boot loader.
	Image string `yaml:"image"`
	// Path is the EFI binary's path inside that image.
	Path string `yaml:"path"`
}

// BoardKubernetes is the cluster's part of a board: images and programs of
// the board's architecture, and the kernel modules container networking
// needs from the board's kernel.
type BoardKubernetes struct {
	// Images are the cluster's own images (the pod sandbox, the cluster
	// DNS), baked like the spec's kubernetes.images; a spec image of the
	// same name replaces one of these.
	Images []config.KubeImage `yaml:"images"`
	// Tools are images whose files are copied over the slot's root: the
	// programs cluster components run, such as nft with its libraries.
	Tools []string `yaml:"tools"`
	// Modules are loaded from the slot besides kernel.modules.
	Modules []string `yaml:"modules"`
}

// BoardFirewall is the host firewall's part of a board: nft with its
// libraries for the board's architecture, and the nf_tables modules the
// policy (agent/firewall) needs from the board's kernel. An image that
// also runs Kubernetes gets the tools once.
type BoardFirewall struct {
	// Tools are images whose files are copied over the slot's root.
	Tools []string `yaml:"tools"`
	// Modules are loaded from the slot besides kernel.modules.
	Modules []string `yaml:"modules"`
}

var (
	nameRE      = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	boardNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	versionRE   = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)
	moduleRE    = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	keyRE       = regexp.MustCompile(`^[A-Za-z]+(\[[0-9]+\])?`)
	// overlayNameRE is an overlay: a .dtbo's name and dtoverlay's parameters.
	overlayNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+(,\S*)?$`)
)

// Arches are the architectures a board may name.
var Arches = []string{"amd64", "arm64"}

// LoadSpec reads and validates an image spec.
func LoadSpec(file string) (*Spec, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("image spec: %w (pass an existing file with -f, e.g. images/minimal.yaml)", err)
	}
	return ParseSpec(file, data)
}

// ParseSpec decodes and validates an image spec; file is used in errors and
// to resolve relative paths.
func ParseSpec(file string, data []byte) (*Spec, error) {
	s := &Spec{}
	ls, err := decodeStrict(file, data, s)
	if err != nil {
		return nil, err
	}
	s.file, s.lines = file, ls
	if _, ok := ls["kubernetes"]; ok && s.Agent.Kubernetes == nil {
		// A bare "kubernetes:" decodes as null; it asks for every default.
		s.Agent.Kubernetes = &config.Kubernetes{}
	}
	if s.Disk.ESPSize == 0 {
		s.Disk.ESPSize = DefaultESPSize
	}
	if s.Disk.SlotSize == 0 {
		s.Disk.SlotSize = DefaultSlotSize
	}
	if s.Disk.DataSize == 0 {
		s.Disk.DataSize = DefaultDataSize
	}
	if err := s.embedUpdateKeys(); err != nil {
		return nil, err
	}
	return s, s.validate()
}

// embedUpdateKeys replaces each update.keys entry that names a file
// (anything but a PEM block) with the file's content, so the agent gets
// the keys themselves.
func (s *Spec) embedUpdateKeys() error {
	u := s.Agent.Update
	if u == nil {
		return nil
	}
	for i, k := range u.Keys {
		if strings.HasPrefix(strings.TrimSpace(k), "-----BEGIN") {
			continue
		}
		b, err := os.ReadFile(resolvePath(s.file, k))
		if err != nil {
			return fmt.Errorf("%s: update.keys[%d]: %v (give a public key file from cairn keygen, relative to the spec, or the PEM text)", s.lines.at(s.file, fmt.Sprintf("update.keys[%d]", i)), i, err)
		}
		u.Keys[i] = string(b)
	}
	return nil
}

func (s *Spec) validate() error {
	at := func(p string) string { return s.lines.at(s.file, p) }
	switch {
	case s.Name == "":
		return fmt.Errorf("%s: missing required key \"name\" (e.g. name: minimal)", at(""))
	case !nameRE.MatchString(s.Name):
		return fmt.Errorf("%s: name %q is not valid: use lowercase letters, digits and dashes, at most 63", at("name"), s.Name)
	case s.Version == "":
		return fmt.Errorf("%s: missing required key \"version\" (e.g. version: 1.0.0)", at(""))
	case !versionRE.MatchString(s.Version):
		return fmt.Errorf("%s: version %q is not valid: use MAJOR.MINOR.PATCH, e.g. 1.2.0 or 1.3.0-rc.1", at("version"), s.Version)
	case s.Disk.ESPSize < 64*MiB:
		return fmt.Errorf("%s: disk.espSize %s is too small for FAT32 with two kernels: use at least 64MiB", at("disk.espSize"), s.Disk.ESPSize)
	case s.Disk.SlotSize < 16*MiB:
		return fmt.Errorf("%s: disk.slotSize %s is too small: use at least 16MiB", at("disk.slotSize"), s.Disk.SlotSize)
	case s.Disk.DataSize < 16*MiB:
		return fmt.Errorf("%s: disk.dataSize %s is too small: use at least 16MiB", at("disk.dataSize"), s.Disk.DataSize)
	}
	for name, sz := range map[string]Size{"espSize": s.Disk.ESPSize, "slotSize": s.Disk.SlotSize, "dataSize": s.Disk.DataSize} {
		if sz%MiB != 0 {
			return fmt.Errorf("%s: disk.%s %d is not a whole number of MiB: partitions are MiB-aligned", at("disk."+name), name, int64(sz))
		}
	}
	if err := checkModules(s.file, s.lines, "kernel.modules", s.Kernel.Modules); err != nil {
		return err
	}
	if err := checkRPiConfig(s.file, s.lines, "rpi", s.RPi.Config, s.RPi.Overlays); err != nil {
		return err
	}
	if err := s.Agent.Validate(); err != nil {
		key, rest, _ := strings.Cut(err.Error(), ":")
		if key == "kubernetes" || key == "firewall" {
			// Point at the key the message names first: "images[1] has no name".
			key += "." + keyRE.FindString(strings.TrimSpace(rest))
		}
		return fmt.Errorf("%s: %v", at(key), err)
	}
	if k := s.Agent.Kubernetes; k != nil {
		for i, m := range k.Manifests {
			if strings.TrimSpace(m) == "" {
				return fmt.Errorf("%s: kubernetes.manifests entry is empty: give a file or directory relative to the spec file", at(fmt.Sprintf("kubernetes.manifests[%d]", i)))
			}
		}
	}
	if err := s.validateSysctl(); err != nil {
		return err
	}
	for i, o := range s.Overlay {
		if o == "" {
			return fmt.Errorf("%s: overlay entry is empty: give a directory relative to the spec file", at(fmt.Sprintf("overlay[%d]", i)))
		}
	}
	return nil
}

// validateSysctl checks each sysctl key's syntax and value, in key order.
func (s *Spec) validateSysctl() error {
	for _, set := range sysctl.FromMap(s.Sysctl) {
		at := s.lines.at(s.file, "sysctl."+set.Key)
		if err := sysctl.CheckKey(set.Key); err != nil {
			return fmt.Errorf("%s: %v", at, err)
		}
		if err := sysctl.CheckValue(set.Key, s.Sysctl[set.Key]); err != nil {
			return fmt.Errorf("%s: %v", at, err)
		}
	}
	return nil
}

// File is the path the spec was read from.
func (s *Spec) File() string { return s.file }

// OverlayDirs returns the overlay directories resolved against the spec's folder.
func (s *Spec) OverlayDirs() []string {
	out := make([]string, len(s.Overlay))
	for i, o := range s.Overlay {
		out[i] = resolvePath(s.file, o)
	}
	return out
}

// LoadBoard finds a board by name in dir (boards/NAME.yaml), or reads the file
// if nameOrFile ends in .yaml.
func LoadBoard(dir, nameOrFile string) (*Board, error) {
	file := nameOrFile
	if !strings.HasSuffix(nameOrFile, ".yaml") {
		if !boardNameRE.MatchString(nameOrFile) {
			return nil, fmt.Errorf("board name %q is not valid: use a name from %s (%s)", nameOrFile, dir, strings.Join(BoardNames(dir), ", "))
		}
		file = filepath.Join(dir, nameOrFile+".yaml")
	}
	data, err := os.ReadFile(file)
	if os.IsNotExist(err) {
		return nil, fmt.Errorf("unknown board %q: no %s (available: %s)", nameOrFile, file, strings.Join(BoardNames(dir), ", "))
	}
	if err != nil {
		return nil, fmt.Errorf("board: %w", err)
	}
	return ParseBoard(file, data)
}

// BoardNames lists the boards defined in dir.
func BoardNames(dir string) []string {
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	names := make([]string, 0, len(files))
	for _, f := range files {
		names = append(names, strings.TrimSuffix(filepath.Base(f), ".yaml"))
	}
	sort.Strings(names)
	if len(names) == 0 {
		return []string{"none found; pass --boards DIR"}
	}
	return names
}

// ParseBoard decodes and validates a board definition.
func ParseBoard(file string, data []byte) (*Board, error) {
	b := &Board{}
	ls, err := decodeStrict(file, data, b)
	if err != nil {
		return nil, err
	}
	b.file, b.lines = file, ls
	return b, b.validate()
}

func (b *Board) validate() error {
	at := func(p string) string { return b.lines.at(b.file, p) }
	base := strings.TrimSuffix(filepath.Base(b.file), ".yaml")
	switch {
	case b.Name == "":
		return fmt.Errorf("%s: missing required key \"name\" (e.g. name: %s)", at(""), base)
	case !boardNameRE.MatchString(b.Name):
		return fmt.Errorf("%s: name %q is not valid: use lowercase letters, digits, dashes and underscores", at("name"), b.Name)
	case strings.HasSuffix(b.file, ".yaml") && base != b.Name:
		return fmt.Errorf("%s: board name %q differs from its file name %q: rename one", at("name"), b.Name, base)
	case b.Arch == "":
		return fmt.Errorf("%s: missing required key \"arch\" (one of %s)", at(""), strings.Join(Arches, ", "))
	case !contains(Arches, b.Arch):
		return fmt.Errorf("%s: arch %q is not supported: use one of %s (Go names, not x86_64/aarch64)", at("arch"), b.Arch, strings.Join(Arches, ", "))
	case !contains(Firmwares, b.Firmware):
		return fmt.Errorf("%s: firmware %q is not supported: use one of %s", at("firmware"), b.Firmware, strings.Join(Firmwares, ", "))
	case b.Kernel.Image == "":
		return fmt.Errorf("%s: missing required key \"kernel.image\" (an OCI reference to a kernel image)", at("kernel"))
	case b.Extlinux != nil && b.Firmware != "extlinux":
		return fmt.Errorf("%s: an extlinux section is for boards with firmware: extlinux, and this one's is %s: take it out", at("extlinux"), b.Firmware)
	case b.Firmware == "rpi":
		if err := b.validateRPi(); err != nil {
			return err
		}
	case b.Firmware == "extlinux":
		if err := b.validateExtlinux(); err != nil {
			return err
		}
	case b.RPi != nil:
		return fmt.Errorf("%s: an rpi section is for boards with firmware: rpi, and this one's is %s: take it out", at("rpi"), b.Firmware)
	case b.Bootloader.Image == "":
		return fmt.Errorf("%s: missing required key \"bootloader.image\" (an OCI reference holding systemd-boot)", at("bootloader"))
	case b.Bootloader.Path == "" || strings.HasPrefix(b.Bootloader.Path, "/") || !strings.HasSuffix(b.Bootloader.Path, ".efi"):
		return fmt.Errorf("%s: bootloader.path %q must be the relative path of an .efi file inside the image, e.g. usr/lib/systemd/boot/efi/systemd-bootx64.efi", at("bootloader.path"), b.Bootloader.Path)
	}
	if err := checkModules(b.file, b.lines, "kernel.bootModules", b.Kernel.BootModules); err != nil {
		return err
	}
	if err := checkModules(b.file, b.lines, "kernel.modules", b.Kernel.Modules); err != nil {
		return err
	}
	if k := b.Kubernetes; k != nil {
		for i, img := range k.Images {
			key := fmt.Sprintf("kubernetes.images[%d]", i)
			if img.Name == "" {
				return fmt.Errorf("%s: %s has no name: give the name pods use, e.g. cairn.local/pause:3.10", at(key), key)
			}
		}
		if err := b.checkTools("kubernetes", k.Tools, k.Modules); err != nil {
			return err
		}
	}
	if f := b.Firewall; f != nil {
		if len(f.Tools) == 0 {
			return fmt.Errorf("%s: firewall.tools is empty: give the image with nft, e.g. oci-layout:../.cache/oci:debian-nftables-%s", at("firewall"), b.Arch)
		}
		return b.checkTools("firewall", f.Tools, f.Modules)
	}
	return nil
}

// validateRPi checks a Raspberry Pi board's rpi section.
func (b *Board) validateRPi() error {
	at := func(p string) string { return b.lines.at(b.file, p) }
	r := b.RPi
	switch {
	case b.Arch != "arm64":
		return fmt.Errorf("%s: firmware rpi boots 64-bit kernels only: use arch: arm64", at("arch"))
	case b.Bootloader != (Bootloader{}):
		return fmt.Errorf("%s: bootloader is for UEFI boards; the Raspberry Pi's firmware is its boot loader (rpi.firmware): take it out", at("bootloader"))
	case r == nil || len(r.DTBs) == 0:
		return fmt.Errorf("%s: missing required key \"rpi.dtbs\" (the board's device trees in the kernel image, e.g. [broadcom/bcm2711-rpi-4-b.dtb])", at(""))
	}
	seen := map[string]string{}
	for i, d := range r.DTBs {
		key := fmt.Sprintf("rpi.dtbs[%d]", i)
		if !relPath(d) || !strings.HasSuffix(d, ".dtb") {
			return fmt.Errorf("%s: %s %q must be the relative path of a .dtb under the kernel image's /boot/dtbs, e.g. broadcom/bcm2711-rpi-4-b.dtb", at(key), key, d)
		}
		base := strings.ToLower(path.Base(d))
		if other, ok := seen[base]; ok {
			return fmt.Errorf("%s: %s %q and %q are one file on the boot partition: keep one", at(key), key, other, d)
		}
		seen[base] = d
	}
	if f := r.Firmware; f != nil {
		switch {
		case f.Image == "":
			return fmt.Errorf("%s: missing required key \"rpi.firmware.image\" (an OCI reference holding the firmware, e.g. oci-layout:../.cache/oci:debian-raspi-firmware)", at("rpi.firmware"))
		case f.Dir != "" && !relPath(f.Dir):
			return fmt.Errorf("%s: rpi.firmware.dir %q must be a relative path inside the image, e.g. usr/lib/raspi-firmware", at("rpi.firmware.dir"), f.Dir)
		case len(f.Files) == 0:
			return fmt.Errorf("%s: rpi.firmware.files is empty: name the firmware files, e.g. [start4.elf, fixup4.dat]", at("rpi.firmware"))
		}
		for i, name := range f.Files {
			key := fmt.Sprintf("rpi.firmware.files[%d]", i)
			base := strings.ToLower(path.Base(name))
			if !relPath(name) {
				return fmt.Errorf("%s: %s %q must be a relative path inside rpi.firmware.dir", at(key), key, name)
			}
			if other, ok := seen[base]; ok {
				return fmt.Errorf("%s: %s %q and %q are one file on the boot partition: keep one", at(key), key, other, name)
			}
			seen[base] = name
		}
	}
	return checkRPiConfig(b.file, b.lines, "rpi", r.Config, r.Overlays)
}

// validateExtlinux checks a U-Boot extlinux board.
func (b *Board) validateExtlinux() error {
	at := func(p string) string { return b.lines.at(b.file, p) }
	switch {
	case b.RPi != nil:
		return fmt.Errorf("%s: an rpi section is for boards with firmware: rpi, and this one's is extlinux: take it out", at("rpi"))
	case b.Bootloader != (Bootloader{}):
		return fmt.Errorf("%s: bootloader is for UEFI boards; an extlinux board's boot loader is U-Boot, in the board's own flash: take it out", at("bootloader"))
	case !contains(b.Kernel.BootModules, "vfat"):
		return fmt.Errorf("%s: kernel.bootModules lacks vfat: on a trial boot cairn-init mounts the ESP from the initramfs to set U-Boot's DEFAULT back (add vfat, and the code page and character set modules the kernel's FAT defaults need, e.g. nls_cp437 and nls_ascii)", at("kernel.bootModules"))
	}
	if e := b.Extlinux; e != nil && e.FDT != "" && (!relPath(e.FDT) || !strings.HasSuffix(e.FDT, ".dtb")) {
		return fmt.Errorf("%s: extlinux.fdt %q must be the relative path of a .dtb under the kernel image's /boot/dtbs, e.g. nvidia/tegra210-p3450-0000.dtb", at("extlinux.fdt"), e.FDT)
	}
	return nil
}

// checkRPiConfig checks the config.txt lines and overlays of section key.
func checkRPiConfig(file string, ls lines, key string, config, overlays []string) error {
	for i, line := range config {
		k := fmt.Sprintf("%s.config[%d]", key, i)
		if strings.ContainsAny(line, "\r\n\x00") {
			return fmt.Errorf("%s: %s has a line break or NUL: give one config.txt line per entry", ls.at(file, k), k)
		}
		if err := tryboot.CheckConfigLine(line); err != nil {
			return fmt.Errorf("%s: %s: %v", ls.at(file, k), k, err)
		}
	}
	for i, o := range overlays {
		k := fmt.Sprintf("%s.overlays[%d]", key, i)
		if !overlayNameRE.MatchString(o) {
			return fmt.Errorf("%s: %s %q is not an overlay: write NAME or NAME,PARAMS as dtoverlay= takes it, e.g. disable-bt", ls.at(file, k), k, o)
		}
	}
	return nil
}

// relPath tells whether p is a relative slash-separated path without . or .. parts.
func relPath(p string) bool { return fs.ValidPath(p) && p != "." }

// checkTools checks the tools and modules of the board's section key.
func (b *Board) checkTools(key string, tools, mods []string) error {
	for i, t := range tools {
		if strings.TrimSpace(t) == "" {
			return fmt.Errorf("%s: %s.tools entry is empty: give an OCI reference, e.g. oci-layout:../.cache/oci:debian-nftables-%s", b.lines.at(b.file, fmt.Sprintf("%s.tools[%d]", key, i)), key, b.Arch)
		}
	}
	return checkModules(b.file, b.lines, key+".modules", mods)
}

// File is the path the board was read from.
func (b *Board) File() string { return b.file }

func checkModules(file string, ls lines, key string, mods []string) error {
	for i, m := range mods {
		if !moduleRE.MatchString(m) {
			return fmt.Errorf("%s: module %q is not a module name: write the name without path or .ko, e.g. virtio_blk", ls.at(file, fmt.Sprintf("%s[%d]", key, i)), m)
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// resolvePath makes p relative to the folder of the file that names it.
func resolvePath(file, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(file), p)
}
