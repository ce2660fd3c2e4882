package plan

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/agent/runtime"
	"github.com/cairn-edge/cairn/builder/fstree"
	"github.com/cairn-edge/cairn/builder/kmod"
	"github.com/cairn-edge/cairn/builder/pki"
	"github.com/cairn-edge/cairn/builder/rootfs"
	"github.com/cairn-edge/cairn/builder/source"
	"github.com/cairn-edge/cairn/builder/spec"
)

// kernel is an unpacked kernel image.
type kernel struct {
	// ref is the image's reference, for errors.
	ref string
	// vmlinuz is the host path of boot/vmlinuz, its links followed inside
	// the image.
	vmlinuz string
	index   *kmod.Index
}

// openKernel finds the kernel and its modules in the kernel image's tree,
// reading inside the tree only: an input's link may not reach the build
// host's files.
func openKernel(in *source.Input, tree *rootfs.Tree) (*kernel, error) {
	vmlinuz, err := tree.HostPath("boot/vmlinuz")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("kernel image %s has no /boot/vmlinuz: use an image made by `make inputs` or one that carries /boot/vmlinuz and /lib/modules/<version>", in.Ref.Raw)
	}
	if err != nil {
		return nil, fmt.Errorf("kernel image %s: %w", in.Ref.Raw, err)
	}
	ix, err := kmod.Open(tree)
	if err != nil {
		return nil, fmt.Errorf("kernel image %s: %w", in.Ref.Raw, err)
	}
	return &kernel{ref: in.Ref.Raw, vmlinuz: vmlinuz, index: ix}, nil
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
		src, err := k.index.HostPath(p)
		if err != nil {
			return fmt.Errorf("kernel image %s: %w", k.ref, err)
		}
		if err := tree.HostFile(base+"/"+p, 0o644, src); err != nil {
			return err
		}
	}
	if err := tree.File(base+"/modules.dep", 0o644, k.index.DepFile(paths)); err != nil {
		return err
	}
	if err := tree.File(base+"/modules.builtin", 0o644, k.index.BuiltinFile()); err != nil {
		return err
	}
	list := "# modules cairn-init loads, in order\n" + strings.Join(names, "\n") + "\n"
	return tree.File(contract.SlotPath(contract.ModulesList), 0o644, []byte(list))
}

// planSlot is the root file system of a slot.
func planSlot(img *spec.Image, in *Inputs, creds *pki.PKI, work string) (*fstree.Tree, error) {
	k, bins, kube := in.kernel, in.bins, in.kube
	t := fstree.New()
	for _, d := range []string{"proc", "sys", "dev", "run", "var", "tmp", "boot", "etc"} {
		if err := t.Dir(d, 0o755); err != nil {
			return nil, err
		}
	}
	// Tools first: our files below replace any of theirs, the overlay all.
	if err := planTools(t, in.toolTrees); err != nil {
		return nil, err
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
	if err := planSysctl(t, img); err != nil {
		return nil, err
	}
	for i, svc := range in.services {
		name := img.Spec.Agent.Services[i].Name
		dir := filepath.Join(work, "images", name)
		if err := svc.WriteLayout(dir); err != nil {
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

// planTools copies the tool images' files over the slot's root. Their
// links are copied as links (fstree.CopyDir follows none), to be followed
// on the node.
func planTools(t *fstree.Tree, tools []*rootfs.Tree) error {
	for _, tree := range tools {
		entries, err := tree.ReadDir(".")
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.Name() == source.TreeMarker {
				continue
			}
			if err := t.CopyDir(filepath.Join(tree.Dir(), e.Name()), e.Name()); err != nil {
				return err
			}
		}
	}
	return nil
}
