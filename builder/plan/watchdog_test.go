package plan

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/agent/watchdog"
	"github.com/cairn-edge/cairn/builder/initramfs"
	"github.com/cairn-edge/cairn/builder/rootfs"
	"github.com/cairn-edge/cairn/builder/source"
	"github.com/cairn-edge/cairn/builder/spec"
	"github.com/cairn-edge/cairn/qemu-tests/qemu"
)

// boardWatchdogs are the watchdog drivers each board's initramfs loads, so
// that cairn-init can arm the watchdog before it mounts the slot.
var boardWatchdogs = map[string][]string{
	"qemu-x86_64":    {"i6300esb"},
	"qemu-aarch64":   {"i6300esb"},
	"generic-x86_64": {"wdat_wdt", "iTCO_wdt", "sp5100_tco", "i6300esb"},
	"generic-arm64":  {"sbsa_gwdt", "i6300esb"},
}

// debianKernel is the unpacked Debian kernel image for arch that make test
// points at (CAIRN_TEST_KERNEL_<ARCH> is its boot/vmlinuz), or "".
func debianKernel(arch string) string {
	vmlinuz := os.Getenv("CAIRN_TEST_KERNEL_" + strings.ToUpper(arch))
	if vmlinuz == "" {
		return ""
	}
	tree := filepath.Dir(filepath.Dir(vmlinuz))
	if _, err := os.Stat(filepath.Join(tree, "lib", "modules")); err != nil {
		return ""
	}
	return tree
}

// Every board's initramfs carries its watchdog drivers; with Debian's
// kernels at hand, every module a board names exists in its kernel, and
// the planned initramfs holds the drivers with what they depend on.
func TestBoardWatchdogModules(t *testing.T) {
	s, err := spec.LoadSpec(minimalSpec)
	if err != nil {
		t.Fatal(err)
	}
	for name, drivers := range boardWatchdogs {
		t.Run(name, func(t *testing.T) {
			b, err := spec.LoadBoard(boardsDir, name)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range drivers {
				if !slices.Contains(b.Kernel.BootModules, d) {
					t.Errorf("bootModules %v lack the watchdog driver %s", b.Kernel.BootModules, d)
				}
			}

			tree := debianKernel(b.Arch)
			if tree == "" {
				t.Skipf("set CAIRN_TEST_KERNEL_%s to the boot/vmlinuz of an unpacked Debian kernel image (make test does) to check the modules against it", strings.ToUpper(b.Arch))
			}
			img := spec.Merge(s, b)
			k, err := openKernel(&source.Input{Ref: source.Reference{Raw: tree}}, rootfs.New(tree))
			if err != nil {
				t.Fatal(err)
			}
			all := append(append([]string{}, img.BootModules...), img.Modules...)
			if b.Kubernetes != nil {
				all = append(all, b.Kubernetes.Modules...)
			}
			if _, err := k.index.Resolve(all); err != nil {
				t.Errorf("board %s: %v", name, err)
			}
			initrd, err := planInitramfs(img, k, filepath.Join(tree, "boot", "vmlinuz")) // any file stands for cairn-init
			if err != nil {
				t.Fatal(err)
			}
			list := read(t, initrd, contract.SlotPath(contract.ModulesList))
			paths, err := k.index.Resolve(drivers)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range paths {
				if _, ok := initrd.Get("lib/modules/" + k.index.Version + "/" + p); !ok {
					t.Errorf("initramfs lacks %s", p)
				}
			}
			for _, d := range drivers {
				if !strings.Contains("\n"+list, "\n"+d+"\n") {
					t.Errorf("initramfs module list lacks %s:\n%s", d, list)
				}
			}
			t.Logf("%s: watchdog modules %v", name, paths)
		})
	}
}

// The initramfs planned for each QEMU board, with cairn-init built from
// this tree and Debian's kernel, arms QEMU's watchdog in stage 1 before it
// waits for the slot; with no disk attached the slot never comes, and the
// watchdog resets the guest (QEMU exits: -no-reboot) before stage 1's own
// 30 s wait runs out.
func TestInitramfsArmsWatchdog(t *testing.T) {
	s, err := spec.LoadSpec(minimalSpec)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"qemu-x86_64", "qemu-aarch64"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b, err := spec.LoadBoard(boardsDir, name)
			if err != nil {
				t.Fatal(err)
			}
			tree := debianKernel(b.Arch)
			if tree == "" {
				t.Skipf("set CAIRN_TEST_KERNEL_%s to the boot/vmlinuz of an unpacked Debian kernel image (make test does)", strings.ToUpper(b.Arch))
			}
			arch, err := qemu.ParseArch(b.Arch)
			if err != nil {
				t.Fatal(err)
			}
			k, err := openKernel(&source.Input{Ref: source.Reference{Raw: tree}}, rootfs.New(tree))
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			initBin := filepath.Join(dir, "cairn-init")
			build := exec.Command("go", "build", "-trimpath", "-o", initBin, "github.com/cairn-edge/cairn/agent/cmd/cairn-init")
			build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+b.Arch)
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("building cairn-init: %v\n%s", err, out)
			}
			initrd, err := planInitramfs(spec.Merge(s, b), k, initBin)
			if err != nil {
				t.Fatal(err)
			}
			initrdPath := filepath.Join(dir, "initrd")
			f, err := os.Create(initrdPath)
			if err != nil {
				t.Fatal(err)
			}
			if err := initramfs.Write(initrd, f); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}

			const timeout = 10
			cmdline := fmt.Sprintf("console=%s quiet %s=a %s=%d", arch.SerialConsole(), contract.SlotParam, watchdog.Param, timeout)
			vm := qemu.StartT(t, qemu.WithArch(arch), qemu.WithKernel(k.vmlinuz, initrdPath, cmdline), qemu.WithWatchdog())
			armed, err := vm.Expect(2*time.Minute, fmt.Sprintf("cairn: watchdog armed timeout=%ds", timeout))
			if err != nil {
				t.Fatal(err)
			}
			if err := vm.Wait(3 * timeout * time.Second); err != nil {
				t.Fatalf("the watchdog did not reset the guest: %v", err)
			}
			took := vm.Since() - armed.At
			t.Logf("armed at %v, reset %v later", armed.At.Round(10*time.Millisecond), took.Round(10*time.Millisecond))
			if took < timeout*time.Second*9/10 {
				t.Errorf("the guest ended %v after the watchdog was armed, before its %ds timeout", took, timeout)
			}
			if strings.Contains(vm.Console(), "cairn: fatal") {
				t.Errorf("stage 1 gave up before the watchdog fired:\n%s", vm.Console())
			}
		})
	}
}
