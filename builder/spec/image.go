package spec

import (
	"fmt"
	"path/filepath"
	"slices"

	"github.com/cairn-edge/cairn/agent/config"
)

// Ref is an OCI reference together with the folder that relative
// oci-layout and oci-archive paths in it are resolved against.
type Ref struct {
	// Ref is the reference as written.
	Ref string
	// Dir is the folder of the file that wrote it.
	Dir string
	// From names the file and key for error messages, e.g. "boards/qemu-x86_64.yaml:6".
	From string
}

// Image is one build's input: a spec on a board, with the board's defaults
// applied and the spec's additions merged in.
type Image struct {
	Spec  *Spec
	Board *Board
	// Kernel is the kernel image to use.
	Kernel Ref
	// Bootloader is the image that holds the EFI boot loader; empty on
	// boards whose firmware is not uefi.
	Bootloader Ref
	// RPi is a Raspberry Pi board's boot files with the spec's additions;
	// nil on other boards.
	RPi *RPi
	// Extlinux is a U-Boot extlinux board's boot files; nil on other
	// boards.
	Extlinux *Extlinux
	// Cmdline is the kernel command line without the slot parameter.
	Cmdline []string
	// BootModules reach the root slot; the initramfs loads them.
	BootModules []string
	// Modules are loaded from the slot.
	Modules []string
	// Services are the system services' image references, in spec order.
	Services []Ref
	// Tools are the board's tool images, copied over the slot's root: its
	// kubernetes.tools for an image that runs Kubernetes, its
	// firewall.tools for one whose host firewall is on, each once.
	Tools []Ref
	// Kubernetes is what the build bakes for the bundled Kubernetes; nil
	// when the spec has no kubernetes section.
	Kubernetes *Kubernetes
}

// RPi is the Raspberry Pi's boot files of an image.
type RPi struct {
	// Firmware is the firmware image; Ref.Ref is empty when the board
	// takes none (the Pi 5).
	Firmware Ref
	// FirmwareDir, FirmwareFiles and FirmwareAbout are the board's rpi.firmware.
	FirmwareDir   string
	FirmwareFiles []string
	FirmwareAbout string
	// DTBs are paths under the kernel image's /boot/dtbs.
	DTBs []string
	// Config are the board's config.txt lines, then the spec's.
	Config []string
	// Overlays are the board's overlays, then the spec's.
	Overlays []string
	// From names the board's rpi section for errors; FirmwareFrom,
	// DTBFrom and OverlayFrom name each entry's file and line (the
	// board's or the spec's).
	From                               string
	FirmwareFrom, DTBFrom, OverlayFrom []string
}

// Extlinux is a U-Boot extlinux board's boot files of an image.
type Extlinux struct {
	// FDT is the device tree's path under the kernel image's /boot/dtbs;
	// empty when the board names none.
	FDT string
	// From names the board's extlinux.fdt (or its firmware key) for errors.
	From string
}

// Kubernetes is the spec's kubernetes section merged with the board's.
type Kubernetes struct {
	// Config is the spec's section with every default applied.
	Config config.Kubernetes
	// Images are the board's cluster images, then the spec's; a spec image
	// replaces the board's of the same name.
	Images []KubeImage
	// Manifests are the spec's manifest files and directories.
	Manifests []Path
	// JoinKubeconfig is the agent-mode kubeconfig; Path.Path is empty when
	// the spec gives none.
	JoinKubeconfig Path
	// BoardHasKubernetes tells whether the board has a kubernetes section.
	BoardHasKubernetes bool
}

// KubeImage is an image baked for the cluster.
type KubeImage struct {
	// Name is the name pods use; the node imports the image under it.
	Name string
	// Ref is where the builder takes it from.
	Ref Ref
}

// Path is a file or directory a spec names, resolved against the spec's
// folder.
type Path struct {
	// Path is the resolved path.
	Path string
	// From names the file and key for error messages.
	From string
}

// OSCmdline starts every image's kernel command line, before the board's
// and the spec's parameters (which can override it: the last one wins).
// Transparent huge pages off. With Debian's default, "always", khugepaged
// fills the sparse heaps of Go programs into whole 2 MiB pages (init's
// 1 MiB of heap became 6 MiB of RSS). With "madvise", nothing of ours asks
// for them (the Go runtime does not), yet khugepaged still raises
// vm.min_free_kbytes to keep free memory for them: 45 MiB on a 1 GiB box,
// whose watermarks then keep ~70 MiB out of MemAvailable. A spec whose
// workload wants huge pages sets kernel.cmdline: [transparent_hugepage=madvise]
// and, to keep the memory, sysctl: {vm.min_free_kbytes: "…"}, which
// cairn-init applies after khugepaged has raised it.
//
// panic=10: a kernel panic reboots the box after 10 s (long enough to read
// the panic on a console) instead of halting it forever, Debian's default.
// On a trial boot the reboot then falls back to the old slot through boot
// counting; a hang that is no panic is the watchdog's (agent/watchdog).
// Not oops=panic: an oops kills the task and the kernel goes on, and a
// driver that oopses on every boot would then turn a box whose slot is
// committed into an endless reboot loop with no slot to fall back to.
// (The kubelet sets kernel.panic_on_oops=1 on Kubernetes nodes once it
// runs, as upstream does.)
var OSCmdline = []string{"transparent_hugepage=never", "panic=10"}

// Merge applies the spec to the board.
func Merge(s *Spec, b *Board) *Image {
	img := &Image{
		Spec:        s,
		Board:       b,
		Kernel:      Ref{Ref: b.Kernel.Image, Dir: filepath.Dir(b.file), From: b.lines.at(b.file, "kernel.image")},
		Cmdline:     slices.Concat(OSCmdline, b.Kernel.Cmdline, s.Kernel.Cmdline),
		BootModules: append([]string{}, b.Kernel.BootModules...),
		Modules:     append(append([]string{}, b.Kernel.Modules...), s.Kernel.Modules...),
	}
	if b.Bootloader.Image != "" {
		img.Bootloader = Ref{Ref: b.Bootloader.Image, Dir: filepath.Dir(b.file), From: b.lines.at(b.file, "bootloader.image")}
	}
	if r := b.RPi; r != nil && b.Firmware == "rpi" {
		img.RPi = &RPi{
			DTBs:     append([]string{}, r.DTBs...),
			Config:   slices.Concat(r.Config, s.RPi.Config),
			Overlays: slices.Concat(r.Overlays, s.RPi.Overlays),
			From:     b.lines.at(b.file, "rpi"),
		}
		for i := range r.DTBs {
			img.RPi.DTBFrom = append(img.RPi.DTBFrom, b.lines.at(b.file, fmt.Sprintf("rpi.dtbs[%d]", i)))
		}
		for i := range r.Overlays {
			img.RPi.OverlayFrom = append(img.RPi.OverlayFrom, b.lines.at(b.file, fmt.Sprintf("rpi.overlays[%d]", i)))
		}
		for i := range s.RPi.Overlays {
			img.RPi.OverlayFrom = append(img.RPi.OverlayFrom, s.lines.at(s.file, fmt.Sprintf("rpi.overlays[%d]", i)))
		}
		if f := r.Firmware; f != nil {
			img.RPi.Firmware = Ref{Ref: f.Image, Dir: filepath.Dir(b.file), From: b.lines.at(b.file, "rpi.firmware.image")}
			img.RPi.FirmwareDir, img.RPi.FirmwareFiles, img.RPi.FirmwareAbout = f.Dir, append([]string{}, f.Files...), f.About
			for i := range f.Files {
				img.RPi.FirmwareFrom = append(img.RPi.FirmwareFrom, b.lines.at(b.file, fmt.Sprintf("rpi.firmware.files[%d]", i)))
			}
		}
	}
	if b.Firmware == "extlinux" {
		img.Extlinux = &Extlinux{From: b.lines.at(b.file, "firmware")}
		if e := b.Extlinux; e != nil && e.FDT != "" {
			img.Extlinux.FDT, img.Extlinux.From = e.FDT, b.lines.at(b.file, "extlinux.fdt")
		}
	}
	for i, svc := range s.Agent.Services {
		img.Services = append(img.Services, Ref{Ref: svc.Image, Dir: filepath.Dir(s.file), From: s.lines.at(s.file, fmt.Sprintf("services[%d].image", i))})
	}
	if s.Agent.Kubernetes != nil {
		img.Kubernetes = mergeKubernetes(s, b)
		if k := b.Kubernetes; k != nil {
			img.addTools(b, "kubernetes", k.Tools, k.Modules)
		}
	}
	if f := b.Firewall; f != nil && s.Agent.FirewallOn() {
		img.addTools(b, "firewall", f.Tools, f.Modules)
	}
	if s.Kernel.Image != "" {
		img.Kernel = Ref{Ref: s.Kernel.Image, Dir: filepath.Dir(s.file), From: s.lines.at(s.file, "kernel.image")}
	}
	return img
}

// addTools adds the tools and modules of the board's section key, leaving
// out those the image has already.
func (img *Image) addTools(b *Board, key string, tools, mods []string) {
	for i, t := range tools {
		if !slices.ContainsFunc(img.Tools, func(r Ref) bool { return r.Ref == t }) {
			img.Tools = append(img.Tools, Ref{Ref: t, Dir: filepath.Dir(b.file), From: b.lines.at(b.file, fmt.Sprintf("%s.tools[%d]", key, i))})
		}
	}
	for _, m := range mods {
		if !slices.Contains(img.Modules, m) {
			img.Modules = append(img.Modules, m)
		}
	}
}

func mergeKubernetes(s *Spec, b *Board) *Kubernetes {
	k := &Kubernetes{Config: s.Agent.Kubernetes.WithDefaults(), BoardHasKubernetes: b.Kubernetes != nil}
	specDir, boardDir := filepath.Dir(s.file), filepath.Dir(b.file)
	fromSpec := map[string]bool{}
	for _, im := range s.Agent.Kubernetes.Images {
		fromSpec[im.Name] = true
	}
	if b.Kubernetes != nil {
		for i, im := range b.Kubernetes.Images {
			if fromSpec[im.Name] {
				continue // the spec's image of this name replaces it
			}
			key := fmt.Sprintf("kubernetes.images[%d]", i)
			if im.Image != "" {
				key += ".image"
			}
			k.Images = append(k.Images, KubeImage{Name: im.Name, Ref: Ref{Ref: im.Ref(), Dir: boardDir, From: b.lines.at(b.file, key)}})
		}
	}
	for i, im := range s.Agent.Kubernetes.Images {
		key := fmt.Sprintf("kubernetes.images[%d]", i)
		if im.Image != "" {
			key += ".image"
		}
		k.Images = append(k.Images, KubeImage{Name: im.Name, Ref: Ref{Ref: im.Ref(), Dir: specDir, From: s.lines.at(s.file, key)}})
	}
	for i, m := range s.Agent.Kubernetes.Manifests {
		k.Manifests = append(k.Manifests, Path{Path: resolvePath(s.file, m), From: s.lines.at(s.file, fmt.Sprintf("kubernetes.manifests[%d]", i))})
	}
	if j := s.Agent.Kubernetes.JoinKubeconfig; j != "" {
		k.JoinKubeconfig = Path{Path: resolvePath(s.file, j), From: s.lines.at(s.file, "kubernetes.joinKubeconfig")}
	}
	return k
}

// OutputName is the base name of the build's files: <spec>-<board>.
func (img *Image) OutputName() string { return img.Spec.Name + "-" + img.Board.Name }
