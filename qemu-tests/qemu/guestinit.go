package qemu

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/builder/kmod"
	"github.com/cairn-edge/cairn/builder/rootfs"
	"github.com/u-root/u-root/pkg/cpio"
)

// GuestOption adds to the initramfs GuestInitramfs builds.
type GuestOption func(*guestConfig)

type guestConfig struct {
	kernelTree string
	modules    []string
}

// GuestModules puts the kernel modules names, with what they depend on,
// from the unpacked kernel image at tree (boot/vmlinuz, lib/modules/<version>)
// into the initramfs and lists them in /etc/cairn/modules, which the test
// init loads the way cairn-init does. The watchdog actions need the
// watchdog's driver: GuestModules(tree, "i6300esb").
func GuestModules(tree string, names ...string) GuestOption {
	return func(c *guestConfig) { c.kernelTree, c.modules = tree, append(c.modules, names...) }
}

// KernelTree returns the unpacked kernel image a kernel file belongs to
// (the directory above its boot/), if it carries /lib/modules.
func KernelTree(vmlinuz string) (string, bool) {
	tree := filepath.Dir(filepath.Dir(vmlinuz))
	_, err := os.Stat(filepath.Join(tree, "lib", "modules"))
	return tree, err == nil
}

// GuestInitramfs builds the harness's tiny Go init (testdata/init: hello,
// power off, print what the kernel alone holds in memory, panic, or arm
// the watchdog, as the kernel command line's cairntest= asks) for arch and
// packs it as /init into a newc cpio archive in dir. It returns the
// archive's path. Boot it with WithKernel and a command line like
// "console=ttyS0 cairntest=meminfo".
func GuestInitramfs(dir string, arch Arch, opts ...GuestOption) (string, error) {
	var cfg guestConfig
	for _, o := range opts {
		o(&cfg)
	}
	root, ok := moduleRoot()
	if !ok {
		return "", fmt.Errorf("building the test init: no Cairn go.mod above the working directory (run from inside the repository)")
	}
	bin := filepath.Join(dir, "init-"+string(arch))
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./qemu-tests/qemu/testdata/init")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+string(arch))
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the test init for %s: %v\n%s", arch, err, out)
	}
	content, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	records := []cpio.Record{
		// The kernel opens /dev/console as init's stdin, stdout and stderr.
		cpio.CharDev("dev/console", 0o600, 5, 1),
		// Mount points for the meminfo probe and the module loader.
		cpio.Directory("proc", 0o755),
		cpio.Directory("sys", 0o755),
		cpio.StaticFile("init", string(content), 0o755),
	}
	name := "initramfs-" + string(arch)
	if len(cfg.modules) > 0 {
		mods, err := moduleRecords(cfg.kernelTree, cfg.modules)
		if err != nil {
			return "", err
		}
		records = append(records, mods...)
		name += "-" + strings.Join(cfg.modules, "-")
	}

	path := filepath.Join(dir, name+".cpio")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	w := cpio.Newc.Writer(f)
	err = cpio.WriteRecordsAndDirs(w, records)
	if err == nil {
		err = cpio.WriteTrailer(w)
	}
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		return "", fmt.Errorf("writing initramfs %s: %w", path, err)
	}
	return path, nil
}

// moduleRecords are the modules names and their dependencies from the
// kernel image at tree, a modules.dep for them, and the list to load.
func moduleRecords(tree string, names []string) ([]cpio.Record, error) {
	ix, err := kmod.Open(rootfs.New(tree))
	if err != nil {
		return nil, err
	}
	paths, err := ix.Resolve(names)
	if err != nil {
		return nil, err
	}
	base := "lib/modules/" + ix.Version + "/"
	var recs []cpio.Record
	for _, p := range paths {
		src, err := ix.HostPath(p)
		if err != nil {
			return nil, err
		}
		b, err := os.ReadFile(src)
		if err != nil {
			return nil, err
		}
		recs = append(recs, cpio.StaticFile(base+p, string(b), 0o644))
	}
	builtin := ix.BuiltinFile()
	return append(recs,
		cpio.StaticFile(base+"modules.dep", string(ix.DepFile(paths)), 0o644),
		cpio.StaticFile(base+"modules.builtin", string(builtin), 0o644),
		cpio.StaticFile(contract.SlotPath(contract.ModulesList), strings.Join(names, "\n")+"\n", 0o644),
	), nil
}
