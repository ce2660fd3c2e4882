// Package build turns an image spec on a board into a bootable A/B disk
// image: it resolves the inputs, plans the root slot, initramfs and ESP as
// file trees, writes them (squashfs, cpio, FAT32 inside GPT) and records
// the input digests. A build is a pure function of its inputs, and it never
// leaves a partial image at the output path: everything is written to
// temporary files that are renamed into place at the end.
package build

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/agent/runtime"
	"github.com/cairn-edge/cairn/builder/bmap"
	"github.com/cairn-edge/cairn/builder/bootentry"
	"github.com/cairn-edge/cairn/builder/disk"
	"github.com/cairn-edge/cairn/builder/fstree"
	"github.com/cairn-edge/cairn/builder/initramfs"
	"github.com/cairn-edge/cairn/builder/kmod"
	"github.com/cairn-edge/cairn/builder/pki"
	"github.com/cairn-edge/cairn/builder/source"
	"github.com/cairn-edge/cairn/builder/spec"
	"github.com/cairn-edge/cairn/builder/squashfs"
)

// DefaultEpoch stamps every file when SOURCE_DATE_EPOCH is not set
// (2024-01-01T00:00:00Z; FAT cannot store times before 1980).
const DefaultEpoch = 1704067200

// Options are a build's settings besides the spec and board.
type Options struct {
	// OutDir receives <spec>-<board>.img, .bmap and .inputs.json.
	OutDir string
	// Cache is the input cache.
	Cache *source.Cache
	// BinDir holds our binaries per architecture: BinDir/linux-<arch>/cairn-init.
	BinDir string
	// PKIDir keeps the node API's CA and identities; missing ones are made.
	// Builds from the same PKIDir are byte-identical; a new one makes new keys.
	PKIDir string
}

// Result describes a finished build.
type Result struct {
	Image, Bmap, Inputs string
	// NodeConfig is the client config for `cairn node` (holds a private key).
	NodeConfig    string
	ImageSize     int64
	SlotSize      int64
	InitramfsSize int64
	MappedBytes   int64
	KernelVersion string
	Took          time.Duration
}

// Record is the content of <output>.inputs.json: what the build was made of.
type Record struct {
	Spec          string        `json:"spec"`
	Board         string        `json:"board"`
	Version       string        `json:"version"`
	KernelVersion string        `json:"kernelVersion"`
	Inputs        []InputRecord `json:"inputs"`
}

// InputRecord pins one input.
type InputRecord struct {
	Role   string `json:"role"`
	Ref    string `json:"ref"`
	Digest string `json:"digest"`
}

// Epoch is the build's timestamp: SOURCE_DATE_EPOCH or DefaultEpoch.
func Epoch() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Unix(DefaultEpoch, 0).UTC(), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 315532800 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a Unix time after 1980 (unset it or give seconds since 1970)", s)
	}
	return time.Unix(n, 0).UTC(), nil
}

// Build makes the image.
func Build(ctx context.Context, img *spec.Image, opt Options) (*Result, error) {
	start := time.Now()
	epoch, err := Epoch()
	if err != nil {
		return nil, err
	}
	arch := img.Board.Arch
	name := img.OutputName()
	log := slog.With("image", name)

	// Outputs go through temporary files in the output directory.
	if err := os.MkdirAll(opt.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("output directory %s cannot be created: %w (pass -o with a writable directory)", opt.OutDir, err)
	}
	work, err := os.MkdirTemp(opt.OutDir, "."+name+".build-")
	if err != nil {
		return nil, fmt.Errorf("output directory %s is not writable: %w (pass -o with a writable directory)", opt.OutDir, err)
	}
	defer os.RemoveAll(work)

	step := stepper(log)
	step("checking spec")
	kubeSt, err := check(img)
	if err != nil {
		return nil, err
	}
	step("resolving inputs")
	kernelIn, err := resolve(ctx, opt.Cache, img.Kernel, arch)
	if err != nil {
		return nil, err
	}
	loaderIn, err := resolve(ctx, opt.Cache, img.Bootloader, arch)
	if err != nil {
		return nil, err
	}
	kernelTree, err := opt.Cache.Tree(kernelIn)
	if err != nil {
		return nil, err
	}
	loaderTree, err := opt.Cache.Tree(loaderIn)
	if err != nil {
		return nil, err
	}
	k, err := openKernel(kernelIn, kernelTree)
	if err != nil {
		return nil, err
	}
	var svcIns []*source.Input
	for _, r := range img.Services {
		in, err := resolve(ctx, opt.Cache, r, arch)
		if err != nil {
			return nil, err
		}
		svcIns = append(svcIns, in)
	}
	var kube *kubePlan
	if kubeSt != nil {
		if kube, err = resolveKubernetes(ctx, opt.Cache, img, kubeSt); err != nil {
			return nil, err
		}
	}
	bins, err := findBinaries(filepath.Join(opt.BinDir, "linux-"+arch), len(img.Services) > 0, img.Kubernetes != nil)
	if err != nil {
		return nil, err
	}
	efi := filepath.Join(loaderTree, filepath.FromSlash(img.Board.Bootloader.Path))
	if _, err := os.Stat(efi); err != nil {
		return nil, fmt.Errorf("boot loader image %s has no %s (%s): fix bootloader.path in %s", img.Bootloader.Ref, img.Board.Bootloader.Path, loaderIn.Digest, img.Board.File())
	}

	step("node API credentials")
	creds, err := pki.Ensure(opt.PKIDir, pki.Options{})
	if err != nil {
		return nil, fmt.Errorf("node API credentials in %s: %w", opt.PKIDir, err)
	}
	for _, f := range creds.Issued {
		log.Info("issued", "file", f, "dir", opt.PKIDir)
	}
	for _, w := range creds.Warnings {
		log.Warn("node API credentials", "warning", w)
	}

	step("planning root slot and initramfs")
	slotTree, err := planSlot(img, k, bins, creds, svcIns, kube, work)
	if err != nil {
		return nil, err
	}
	initrdTree, err := planInitramfs(img, k, bins.init)
	if err != nil {
		return nil, err
	}

	step("writing squashfs root slot")
	slotPath := filepath.Join(work, "slot.squashfs")
	slotSize, err := squashfs.Write(slotTree, slotPath, epoch)
	if err != nil {
		return nil, err
	}
	step("writing initramfs")
	var initrd bytes.Buffer
	if err := initramfs.Write(initrdTree, &initrd); err != nil {
		return nil, err
	}

	step("writing disk image")
	layout, err := disk.Plan(arch, name, disk.Sizes{ESP: int64(img.Spec.Disk.ESPSize), Slot: int64(img.Spec.Disk.SlotSize), Data: int64(img.Spec.Disk.DataSize)})
	if err != nil {
		return nil, err
	}
	esp, err := planESP(img, k, efi, initrd.Bytes())
	if err != nil {
		return nil, err
	}
	imgTmp := filepath.Join(work, "disk.img")
	f, err := os.Create(imgTmp)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := disk.Write(f, layout, disk.Contents{ESP: esp, SlotA: slotPath, Epoch: epoch}); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}

	step("writing block map")
	m, err := bmap.Scan(f)
	if err != nil {
		return nil, err
	}
	bmapTmp := filepath.Join(work, "disk.bmap")
	if err := os.WriteFile(bmapTmp, m.Encode(), 0o644); err != nil {
		return nil, err
	}
	nodeTmp := filepath.Join(work, "node.yaml")
	if err := pki.WriteClientConfig(nodeTmp, fmt.Sprintf("https://%s:%d", pki.ServerName, api.DefaultPort), creds); err != nil {
		return nil, err
	}
	rec := Record{Spec: img.Spec.Name, Board: img.Board.Name, Version: img.Spec.Version, KernelVersion: k.index.Version, Inputs: []InputRecord{
		{Role: "kernel", Ref: kernelIn.Ref.Raw, Digest: kernelIn.Digest.String()},
		{Role: "bootloader", Ref: loaderIn.Ref.Raw, Digest: loaderIn.Digest.String()},
	}}
	for i, in := range svcIns {
		rec.Inputs = append(rec.Inputs, InputRecord{Role: "service " + img.Spec.Agent.Services[i].Name, Ref: in.Ref.Raw, Digest: in.Digest.String()})
	}
	if kube != nil {
		for _, im := range kube.images {
			rec.Inputs = append(rec.Inputs, InputRecord{Role: "kubernetes image " + im.name, Ref: im.in.Ref.Raw, Digest: im.in.Digest.String()})
		}
		for _, in := range kube.toolIns {
			rec.Inputs = append(rec.Inputs, InputRecord{Role: "kubernetes tool", Ref: in.Ref.Raw, Digest: in.Digest.String()})
		}
	}
	recJSON, _ := json.MarshalIndent(rec, "", "  ")
	recTmp := filepath.Join(work, "inputs.json")
	if err := os.WriteFile(recTmp, append(recJSON, '\n'), 0o644); err != nil {
		return nil, err
	}

	res := &Result{
		Image:         filepath.Join(opt.OutDir, name+".img"),
		Bmap:          filepath.Join(opt.OutDir, name+".bmap"),
		Inputs:        filepath.Join(opt.OutDir, name+".inputs.json"),
		NodeConfig:    filepath.Join(opt.OutDir, name+".node.yaml"),
		ImageSize:     layout.Size,
		SlotSize:      slotSize,
		InitramfsSize: int64(initrd.Len()),
		MappedBytes:   m.Mapped() * bmap.BlockSize,
		KernelVersion: k.index.Version,
	}
	// The image is renamed last: its presence means the build finished.
	for _, mv := range [][2]string{{recTmp, res.Inputs}, {nodeTmp, res.NodeConfig}, {bmapTmp, res.Bmap}, {imgTmp, res.Image}} {
		if err := os.Rename(mv[0], mv[1]); err != nil {
			return nil, fmt.Errorf("output: %w", err)
		}
	}
	res.Took = time.Since(start)
	step("")
	log.Info("built", "image", res.Image, "size", res.ImageSize, "slot", slotSize, "initramfs", res.InitramfsSize, "took", res.Took.Round(time.Millisecond))
	return res, nil
}

// stepper logs the start of each build step with how long the previous one took.
func stepper(log *slog.Logger) func(string) {
	var name string
	var began time.Time
	return func(next string) {
		if name != "" {
			log.Info("step done", "step", name, "took", time.Since(began).Round(time.Millisecond))
		}
		name, began = next, time.Now()
		if next != "" {
			log.Info("step", "step", next)
		}
	}
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

// kernel is an unpacked kernel image.
type kernel struct {
	vmlinuz string
	index   *kmod.Index
}

func openKernel(in *source.Input, tree string) (*kernel, error) {
	vmlinuz := filepath.Join(tree, "boot", "vmlinuz")
	if _, err := os.Stat(vmlinuz); err != nil {
		return nil, fmt.Errorf("kernel image %s has no /boot/vmlinuz: use an image made by `make inputs` or one that carries /boot/vmlinuz and /lib/modules/<version>", in.Ref.Raw)
	}
	ix, err := kmod.Open(tree)
	if err != nil {
		return nil, fmt.Errorf("kernel image %s: %w", in.Ref.Raw, err)
	}
	return &kernel{vmlinuz: vmlinuz, index: ix}, nil
}

// Binaries that go into the slot. cairn-init and the agent always; the
// container runtime (RuntimeBinaries, made by `make runtime`) exactly when
// the image runs services or Kubernetes; for Kubernetes also the agent
// built with containerd's CRI (`make binaries`), cairn-kube (`make kube`)
// and the CNI plugins (`make runtime`, in BinDir/linux-<arch>/cni/).
// containerd's daemon is part of cairn-agent (package agent/containerd):
// /usr/bin/containerd is a link to it.
var (
	RuntimeBinaries = []string{"containerd-shim-runc-v2", "runc"}
	KubeBinaries    = []string{"cairn-kube"}
)

// The agent's two builds: with containerd's CRI plugins (tag cri) for
// images that run Kubernetes, without for the rest (smaller, less memory).
const (
	agentBinary    = "cairn-agent"
	agentCRIBinary = "cairn-agent-cri"
)

// containerdLink is where cairn-init starts containerd in a slot that runs services.
const containerdLink = "usr/bin/containerd"

// binaries are the programs of a slot.
type binaries struct {
	// init is cairn-init: /sbin/init in the slot, /init in the initramfs.
	init string
	// slot maps a slot path to the host file that goes there.
	slot map[string]string
	// runtime tells whether the container runtime is in: then containerd's
	// link and configuration are too.
	runtime bool
}

// findBinaries finds in dir the binaries an image needs: what the spec asks
// for, not what dir happens to hold.
func findBinaries(dir string, services, kube bool) (*binaries, error) {
	b := &binaries{slot: map[string]string{}, runtime: services || kube}
	find := func(name, missing string) (string, error) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf(missing, name, p)
		}
		return p, nil
	}
	var err error
	if b.init, err = find("cairn-init", "no %s at %s: build it first with `make binaries` (or pass --bin-dir)"); err != nil {
		return nil, err
	}
	b.slot["sbin/init"] = b.init
	agent, missing := agentBinary, "no %s at %s: build it first with `make binaries` (or pass --bin-dir)"
	if kube {
		agent, missing = agentCRIBinary, "the image runs Kubernetes, whose kubelet needs containerd's CRI, but there is no %s at %s: build it first with `make binaries`"
	}
	if b.slot["usr/bin/"+agentBinary], err = find(agent, missing); err != nil {
		return nil, err
	}
	if !b.runtime {
		return b, nil
	}
	for _, name := range RuntimeBinaries {
		if b.slot["usr/bin/"+name], err = find(name, "the image runs containers but there is no %s at %s: build the container runtime first with `make runtime`"); err != nil {
			return nil, err
		}
	}
	if !kube {
		return b, nil
	}
	for _, name := range KubeBinaries {
		if b.slot["usr/bin/"+name], err = find(name, "the image runs Kubernetes but there is no %s at %s: build it first with `make kube`"); err != nil {
			return nil, err
		}
	}
	for _, name := range runtime.CNIPlugins {
		dst := strings.TrimPrefix(runtime.CNIBinDir, "/") + "/" + name
		if b.slot[dst], err = find("cni/"+name, "the image runs Kubernetes but there is no CNI plugin %s at %s: build the container runtime first with `make runtime`"); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// addModules copies the named modules and their dependencies, a modules.dep
// covering just them and modules.builtin into tree, and writes the list of
// names to load at etc/cairn/modules.
func addModules(tree *fstree.Tree, k *kernel, names []string) error {
	paths, err := k.index.Resolve(names)
	if err != nil {
		return err
	}
	base := "lib/modules/" + k.index.Version
	for _, p := range paths {
		if err := tree.HostFile(base+"/"+p, 0o644, filepath.Join(k.index.Dir, filepath.FromSlash(p))); err != nil {
			return err
		}
	}
	if err := tree.File(base+"/modules.dep", 0o644, k.index.DepFile(paths)); err != nil {
		return err
	}
	builtin, err := os.ReadFile(filepath.Join(k.index.Dir, "modules.builtin"))
	if err != nil {
		builtin = nil // a kernel without built-in modules
	}
	if err := tree.File(base+"/modules.builtin", 0o644, builtin); err != nil {
		return err
	}
	list := "# modules cairn-init loads, in order\n" + strings.Join(names, "\n") + "\n"
	return tree.File(contract.SlotPath(contract.ModulesList), 0o644, []byte(list))
}

// planSlot is the root file system of a slot.
func planSlot(img *spec.Image, k *kernel, bins *binaries, creds *pki.PKI, svcIns []*source.Input, kube *kubePlan, work string) (*fstree.Tree, error) {
	t := fstree.New()
	for _, d := range []string{"proc", "sys", "dev", "run", "var", "tmp", "boot", "etc"} {
		if err := t.Dir(d, 0o755); err != nil {
			return nil, err
		}
	}
	// Tools first: our files below replace any of theirs, the overlay all.
	if kube != nil {
		if err := planKubeTools(t, kube); err != nil {
			return nil, err
		}
	}
	for dst, path := range bins.slot {
		if err := t.HostFile(dst, 0o755, path); err != nil {
			return nil, err
		}
	}
	if bins.runtime {
		if err := t.Symlink(containerdLink, agentBinary); err != nil {
			return nil, err
		}
		if err := t.File(strings.TrimPrefix(runtime.ConfigPath, "/"), 0o644, runtime.ContainerdConfig); err != nil {
			return nil, err
		}
	}
	if kube != nil {
		if err := planKubernetes(t, kube, work); err != nil {
			return nil, err
		}
	}
	agentConf, err := img.Spec.Agent.Marshal()
	if err != nil {
		return nil, err
	}
	if err := t.File(contract.SlotPath(contract.AgentConfig), 0o644, agentConf); err != nil {
		return nil, err
	}
	for i, in := range svcIns {
		name := img.Spec.Agent.Services[i].Name
		dir := filepath.Join(work, "images", name)
		if err := in.WriteLayout(dir); err != nil {
			return nil, fmt.Errorf("service %s: %w", name, err)
		}
		if err := t.CopyDir(dir, contract.SlotPath(contract.ServiceImagesDir)+"/"+name); err != nil {
			return nil, err
		}
	}
	for _, dir := range img.Spec.OverlayDirs() {
		if err := t.CopyDir(dir, ""); err != nil {
			return nil, fmt.Errorf("overlay %s cannot be read: %w (fix the overlay entry in %s)", dir, err, img.Spec.File())
		}
	}
	mods := append(append([]string{}, img.BootModules...), img.Modules...)
	if err := addModules(t, k, mods); err != nil {
		return nil, err
	}
	for _, f := range creds.SlotFiles() {
		if err := t.File(f.Path, f.Mode, f.Data); err != nil {
			return nil, err
		}
	}
	// /etc is read-only: the agent writes the resolver config under /run
	// and bind-mounts it here. (A symlink would be neater, but go-diskfs
	// v1.9.4 cannot store a link whose target is absent at build time.)
	if err := t.File("etc/resolv.conf", 0o644, nil); err != nil {
		return nil, err
	}
	release := fmt.Sprintf("NAME=%s\nVERSION=%s\nBOARD=%s\nARCH=%s\nKERNEL=%s\n", img.Spec.Name, img.Spec.Version, img.Board.Name, img.Board.Arch, k.index.Version)
	if err := t.File(contract.SlotPath(contract.ReleaseFile), 0o644, []byte(release)); err != nil {
		return nil, err
	}
	osRelease := fmt.Sprintf("NAME=Cairn\nID=cairn\nPRETTY_NAME=\"Cairn %s (%s)\"\nVERSION_ID=%s\nIMAGE_ID=%s\nIMAGE_VERSION=%s\n", img.Spec.Version, img.Spec.Name, img.Spec.Version, img.Spec.Name, img.Spec.Version)
	return t, t.File("etc/os-release", 0o644, []byte(osRelease))
}

// planInitramfs is the initramfs: cairn-init and the modules to reach root.
func planInitramfs(img *spec.Image, k *kernel, initBin string) (*fstree.Tree, error) {
	t := fstree.New()
	if err := t.HostFile("init", 0o755, initBin); err != nil {
		return nil, err
	}
	if err := t.File(contract.SlotPath(contract.InitramfsMarker), 0o644, nil); err != nil {
		return nil, err
	}
	for _, d := range []string{"dev", "proc", "sys", "run", "newroot"} {
		if err := t.Dir(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := addModules(t, k, img.BootModules); err != nil {
		return nil, err
	}
	return t, nil
}

// efiBootNames are the removable-media boot paths UEFI firmware looks for.
var efiBootNames = map[string]string{"amd64": "BOOTX64.EFI", "arm64": "BOOTAA64.EFI"}

// planESP is the EFI system partition of a fresh image: systemd-boot and
// slot A's kernel, initramfs and boot entry. Slot B gets its files and
// entry when an update is written to it.
func planESP(img *spec.Image, k *kernel, efi string, initrd []byte) (*fstree.Tree, error) {
	t := fstree.New()
	if err := t.HostFile("EFI/BOOT/"+efiBootNames[img.Board.Arch], 0o644, efi); err != nil {
		return nil, err
	}
	if err := t.File(contract.ESPLoaderConf, 0o644, bootentry.LoaderConf()); err != nil {
		return nil, err
	}
	e := bootentry.Entry{
		Slot:    "a",
		Title:   fmt.Sprintf("Cairn %s %s (slot A)", img.Spec.Name, img.Spec.Version),
		Version: img.Spec.Version,
		Linux:   "/" + path.Join(contract.SlotA.BootDir(), contract.KernelFile),
		Initrd:  "/" + path.Join(contract.SlotA.BootDir(), contract.InitrdFile),
		Options: strings.Join(append(append([]string{}, img.Cmdline...), contract.SlotOption(contract.SlotA)), " "),
	}
	if err := t.File(path.Join(contract.ESPEntriesDir, e.FileName()), 0o644, e.Render()); err != nil {
		return nil, err
	}
	if err := t.HostFile(path.Join(contract.SlotA.BootDir(), contract.KernelFile), 0o644, k.vmlinuz); err != nil {
		return nil, err
	}
	return t, t.File(path.Join(contract.SlotA.BootDir(), contract.InitrdFile), 0o644, initrd)
}
