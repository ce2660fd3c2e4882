package spec

import (
	"fmt"
	"path/filepath"
	"slices"
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
	// Bootloader is the image that holds the EFI boot loader.
	Bootloader Ref
	// Cmdline is the kernel command line without the slot parameter.
	Cmdline []string
	// BootModules reach the root slot; the initramfs loads them.
	BootModules []string
	// Modules are loaded from the slot.
	Modules []string
	// Services are the system services' image references, in spec order.
	Services []Ref
}

// OSCmdline starts every image's kernel command line, before the board's
// and the spec's parameters (which can override it: the last one wins).
// Transparent huge pages only where a program asks for them (madvise):
// with Debian's default, "always", khugepaged fills the sparse heaps of Go
// programs into whole 2 MiB pages — init's 1 MiB of heap became 6 MiB of
// RSS — and memory is what edge boxes lack.
var OSCmdline = []string{"transparent_hugepage=madvise"}

// Merge applies the spec to the board.
func Merge(s *Spec, b *Board) *Image {
	img := &Image{
		Spec:        s,
		Board:       b,
		Kernel:      Ref{Ref: b.Kernel.Image, Dir: filepath.Dir(b.file), From: b.lines.at(b.file, "kernel.image")},
		Bootloader:  Ref{Ref: b.Bootloader.Image, Dir: filepath.Dir(b.file), From: b.lines.at(b.file, "bootloader.image")},
		Cmdline:     slices.Concat(OSCmdline, b.Kernel.Cmdline, s.Kernel.Cmdline),
		BootModules: append([]string{}, b.Kernel.BootModules...),
		Modules:     append(append([]string{}, b.Kernel.Modules...), s.Kernel.Modules...),
	}
	for i, svc := range s.Agent.Services {
		img.Services = append(img.Services, Ref{Ref: svc.Image, Dir: filepath.Dir(s.file), From: s.lines.at(s.file, fmt.Sprintf("services[%d].image", i))})
	}
	if s.Kernel.Image != "" {
		img.Kernel = Ref{Ref: s.Kernel.Image, Dir: filepath.Dir(s.file), From: s.lines.at(s.file, "kernel.image")}
	}
	return img
}

// OutputName is the base name of the build's files: <spec>-<board>.
func (img *Image) OutputName() string { return img.Spec.Name + "-" + img.Board.Name }
