// Package output writes a plan (builder/plan) as one output format, one
// writer per format, chosen by name (`cairn build --format`):
//
//	w, err := output.Lookup("raw")           // checked before anything is built
//	files, err := w.Write(ctx, p, workDir)  // files in workDir; the caller renames them into place
//
// Today: raw (a whole disk image with its block map) and oci (the update
// artifact `cairn push` sends, as an OCI image layout directory). The ISO,
// PXE bundle and SD-card layouts come as further writers.
package output

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cairn-edge/cairn/builder/initramfs"
	"github.com/cairn-edge/cairn/builder/plan"
	"github.com/cairn-edge/cairn/builder/squashfs"
)

// Writer writes one output format.
type Writer interface {
	// Write writes p's outputs into dir (a private work directory) and
	// says what it wrote.
	Write(ctx context.Context, p *plan.Plan, dir string) (*Files, error)
}

// File is one output file.
type File struct {
	// Path is where the writer put it, in its work directory: a file, or
	// a directory (the oci format's layout), which is moved whole.
	Path string
	// Ext is its name's ending after the image name: ".img", ".bmap", ".oci".
	Ext string
}

// Files are what a writer wrote, and the figures of the build.
type Files struct {
	// Files are in the order to move them into place; the first is the
	// output itself, moved last so that its presence means a finished build.
	Files []File
	// Size is the output's size; Mapped how much of it holds data.
	Size, Mapped int64
	// SlotSize and InitramfsSize are the rendered slot and initramfs.
	SlotSize, InitramfsSize int64
}

// formats maps a format name to its writer.
var formats = map[string]Writer{
	"raw": Raw{},
	"oci": OCI{},
	"pxe": PXE{},
}

// DefaultFormat is the format of a build that names none.
const DefaultFormat = "raw"

// Formats are the format names, sorted.
func Formats() []string {
	var names []string
	for n := range formats {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Lookup returns the writer of a format.
func Lookup(format string) (Writer, error) {
	w, ok := formats[format]
	if !ok {
		return nil, fmt.Errorf("output format %q is not one Cairn writes (use --format %s)", format, strings.Join(Formats(), " or "))
	}
	return w, nil
}

// rendered are the plan's trees as bytes: every format carries them.
type rendered struct {
	// slot is the path of the slot's squashfs image.
	slot     string
	slotSize int64
	initrd   []byte
}

// render writes the slot's squashfs into dir and the initramfs into memory.
func render(p *plan.Plan, dir string) (*rendered, error) {
	r := &rendered{slot: filepath.Join(dir, "slot.squashfs")}
	var err error
	if r.slotSize, err = squashfs.Write(p.Slot, r.slot, p.Epoch); err != nil {
		return nil, err
	}
	var initrd bytes.Buffer
	if err := initramfs.Write(p.Initramfs, &initrd); err != nil {
		return nil, err
	}
	r.initrd = initrd.Bytes()
	return r, nil
}
