// Package plan decides what goes where in an image before anything is
// written: from a checked spec on a board and its resolved inputs, the
// root slot's file tree, the initramfs tree, what the boot loader starts
// for a slot, the board family's firmware part and the partition table.
// The output writers (builder/output) turn a Plan into files; tests
// inspect a Plan without writing an image.
//
//	if err := plan.Check(img); err != nil { … }          // no inputs needed
//	in, err := plan.Resolve(ctx, cache, img, binDir)     // digest-pinned inputs
//	p, err := plan.Make(img, in, creds, epoch, workDir)
//	p.Slot.Walk(…); p.Layout.Partitions; p.Boot.Cmdline
package plan

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/cairn-edge/cairn/builder/disk"
	"github.com/cairn-edge/cairn/builder/firmware"
	"github.com/cairn-edge/cairn/builder/fstree"
	"github.com/cairn-edge/cairn/builder/pki"
	"github.com/cairn-edge/cairn/builder/rootfs"
	"github.com/cairn-edge/cairn/builder/source"
	"github.com/cairn-edge/cairn/builder/spec"
)

// Plan is an image decided: every tree and setting the writers need.
type Plan struct {
	// Image is the spec merged with its board.
	Image *spec.Image
	// Name is the outputs' base name, <spec>-<board>.
	Name string
	// Epoch stamps every file.
	Epoch time.Time
	// KernelVersion is the kernel's release, e.g. 6.1.0-28-amd64.
	KernelVersion string
	// Slot is the root file system of a slot.
	Slot *fstree.Tree
	// Initramfs is cairn-init and the modules that reach the root.
	Initramfs *fstree.Tree
	// Boot is what the boot loader starts for a slot.
	Boot firmware.Boot
	// Firmware is the board family's part: boot partition and partition rules.
	Firmware firmware.Part
	// Layout is the partition table.
	Layout disk.Layout
	// Inputs pins every input the image is made of, in a stable order.
	Inputs []Pin
}

// Pin is one input resolved to its digest.
type Pin struct {
	Role   string `json:"role"`
	Ref    string `json:"ref"`
	Digest string `json:"digest"`
}

// Inputs are an image's inputs, resolved and unpacked where a plan reads
// their files.
type Inputs struct {
	kernelIn, loaderIn, firmwareIn *source.Input
	kernel                         *kernel
	// kernelTree, loaderTree and firmwareTree are the unpacked kernel,
	// boot loader (uefi) and firmware (rpi) images; the last two nil when
	// the board names none.
	kernelTree, loaderTree, firmwareTree *rootfs.Tree
	services                             []*source.Input
	// tools are the board's tool images and their unpacked trees.
	tools     []*source.Input
	toolTrees []*rootfs.Tree
	kube      *kubePlan
	bins      *binaries
}

// Check checks an image without its inputs: references parse, and for
// Kubernetes the board's section, the image names, the manifests, the join
// kubeconfig and the pod network. Resolve runs it first.
func Check(img *spec.Image) error {
	_, err := check(img)
	return err
}

// Resolve checks img, resolves every input it names for the board's arch
// through the cache, and finds our binaries for that arch in binDir
// (binDir/linux-<arch>/cairn-init, …).
func Resolve(ctx context.Context, c *source.Cache, img *spec.Image, binDir string) (*Inputs, error) {
	kubeSt, err := check(img)
	if err != nil {
		return nil, err
	}
	arch := img.Board.Arch
	in := &Inputs{}
	if in.kernelIn, err = resolve(ctx, c, img.Kernel, arch); err != nil {
		// A board whose kernel the user supplies says what it must hold.
		if about := img.Board.Kernel.About; about != "" && img.Kernel.Ref == img.Board.Kernel.Image {
			return nil, fmt.Errorf("%w\nthe board's kernel image is not there: %s", err, about)
		}
		return nil, err
	}
	if in.kernelTree, err = c.Tree(in.kernelIn); err != nil {
		return nil, err
	}
	if in.kernel, err = openKernel(in.kernelIn, in.kernelTree); err != nil {
		return nil, err
	}
	if img.Bootloader.Ref != "" {
		if in.loaderIn, err = resolve(ctx, c, img.Bootloader, arch); err != nil {
			return nil, err
		}
		if in.loaderTree, err = c.Tree(in.loaderIn); err != nil {
			return nil, err
		}
	}
	if r := img.RPi; r != nil && r.Firmware.Ref != "" {
		if in.firmwareIn, err = resolve(ctx, c, r.Firmware, arch); err != nil {
			if r.FirmwareAbout != "" {
				return nil, fmt.Errorf("%w (the firmware image: %s)", err, r.FirmwareAbout)
			}
			return nil, err
		}
		if in.firmwareTree, err = c.Tree(in.firmwareIn); err != nil {
			return nil, err
		}
	}
	for _, r := range img.Services {
		s, err := resolve(ctx, c, r, arch)
		if err != nil {
			return nil, err
		}
		in.services = append(in.services, s)
	}
	for _, r := range img.Tools {
		t, err := resolveAs(ctx, c, r, arch, "tool")
		if err != nil {
			return nil, err
		}
		tree, err := c.Tree(t)
		if err != nil {
			return nil, err
		}
		in.tools, in.toolTrees = append(in.tools, t), append(in.toolTrees, tree)
	}
	if kubeSt != nil {
		if in.kube, err = resolveKubernetes(ctx, c, img, kubeSt); err != nil {
			return nil, err
		}
	}
	if in.bins, err = findBinaries(filepath.Join(binDir, "linux-"+arch), len(img.Services) > 0, img.Kubernetes != nil); err != nil {
		return nil, err
	}
	return in, nil
}

// Make plans the image. creds are the node API's credentials baked into
// the slot; work receives the baked images' OCI layouts, which the slot
// tree refers to.
func Make(img *spec.Image, in *Inputs, creds *pki.PKI, epoch time.Time, work string) (*Plan, error) {
	part, err := firmware.For(img, firmware.Inputs{Kernel: in.kernelTree, KernelRef: img.Kernel.Ref, Loader: in.loaderTree, Firmware: in.firmwareTree})
	if err != nil {
		return nil, err
	}
	name := img.OutputName()
	layout, err := part.Layout(name, disk.Sizes{ESP: int64(img.Spec.Disk.ESPSize), Slot: int64(img.Spec.Disk.SlotSize), Data: int64(img.Spec.Disk.DataSize)})
	if err != nil {
		return nil, err
	}
	p := &Plan{
		Image:         img,
		Name:          name,
		Epoch:         epoch,
		KernelVersion: in.kernel.index.Version,
		Firmware:      part,
		Layout:        layout,
		Boot: firmware.Boot{
			Kernel:  in.kernel.vmlinuz,
			Cmdline: append([]string{}, img.Cmdline...),
			Title:   fmt.Sprintf("Cairn %s %s", img.Spec.Name, img.Spec.Version),
			Version: img.Spec.Version,
		},
		Inputs: in.pins(img),
	}
	if p.Slot, err = planSlot(img, in, creds, work); err != nil {
		return nil, err
	}
	if p.Initramfs, err = planInitramfs(img, in.kernel, in.bins.init); err != nil {
		return nil, err
	}
	return p, nil
}

// pins lists the inputs: kernel, boot loader or firmware, services, tools, the cluster's images.
func (in *Inputs) pins(img *spec.Image) []Pin {
	pin := func(role string, s *source.Input) Pin {
		return Pin{Role: role, Ref: s.Ref.Raw, Digest: s.Digest.String()}
	}
	pins := []Pin{pin("kernel", in.kernelIn)}
	if in.loaderIn != nil {
		pins = append(pins, pin("bootloader", in.loaderIn))
	}
	if in.firmwareIn != nil {
		pins = append(pins, pin("firmware", in.firmwareIn))
	}
	for i, s := range in.services {
		pins = append(pins, pin("service "+img.Spec.Agent.Services[i].Name, s))
	}
	for _, s := range in.tools {
		pins = append(pins, pin("tool", s))
	}
	if in.kube != nil {
		for _, im := range in.kube.images {
			pins = append(pins, pin("kubernetes image "+im.name, im.in))
		}
	}
	return pins
}

func resolve(ctx context.Context, c *source.Cache, r spec.Ref, arch string) (*source.Input, error) {
	ref, err := source.Parse(r.Ref, r.Dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.From, err)
	}
	in, err := c.Resolve(ctx, ref, arch)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.From, err)
	}
	return in, nil
}
