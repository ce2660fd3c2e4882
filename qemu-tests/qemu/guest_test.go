package qemu

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
)

// The harness's own tests boot Debian's kernel straight into a tiny Go init
// (testdata/init). The kernels come from these variables.
var kernelEnv = map[Arch]string{
	AMD64: "CAIRN_TEST_KERNEL_AMD64",
	ARM64: "CAIRN_TEST_KERNEL_ARM64",
}

// testKernel returns the kernel for arch, or skips the test.
func testKernel(t *testing.T, arch Arch) string {
	t.Helper()
	env := kernelEnv[arch]
	k := os.Getenv(env)
	if k == "" {
		t.Skipf("set %s to the path of a Linux kernel for %s (e.g. /boot/vmlinuz-* from Debian's linux-image-%s) to run this test", env, arch, arch)
	}
	if _, err := os.Stat(k); err != nil {
		t.Skipf("%s: %v", env, err)
	}
	return k
}

// needUEFI skips the test when QEMU or UEFI firmware for arch is missing.
func needUEFI(t *testing.T, arch Arch) {
	t.Helper()
	if _, err := qemuBinary(arch); err != nil {
		t.Skip(err)
	}
	if _, err := findFirmware(arch); err != nil {
		t.Skip(err)
	}
}

// quickArch returns the architecture to run single-arch tests on: arm64
// when its kernel is there, as it boots fastest under TCG.
func quickArch(t *testing.T) Arch {
	t.Helper()
	for _, a := range []Arch{ARM64, AMD64} {
		if os.Getenv(kernelEnv[a]) != "" {
			return a
		}
	}
	t.Skipf("set %s or %s to a Linux kernel to run this test", kernelEnv[ARM64], kernelEnv[AMD64])
	return ""
}

// testGuest returns options booting the tiny init on arch, doing action
// (see testdata/init).
func testGuest(t *testing.T, arch Arch, action string) []Option {
	t.Helper()
	kernel := testKernel(t, arch)
	cmdline := "console=" + arch.SerialConsole() + " quiet panic=-1 cairntest=" + action
	return []Option{WithArch(arch), WithKernel(kernel, testInitramfs(t, arch), cmdline)}
}

// watchdogGuest returns options booting the tiny init on arch with the
// i6300ESB's driver in its initramfs, doing a watchdog action (see
// testdata/init) with a timeout of timeout seconds. The kernel is not
// quiet: its first line ("Linux version …") marks the start of a boot.
func watchdogGuest(t *testing.T, arch Arch, action string, timeout int) []Option {
	t.Helper()
	kernel := testKernel(t, arch)
	tree, ok := KernelTree(kernel)
	if !ok {
		t.Skipf("%s is not in an unpacked kernel image with /lib/modules (the watchdog's driver is a module)", kernel)
	}
	cmdline := fmt.Sprintf("console=%s panic=-1 cairntest=%s cairntest_timeout=%d", arch.SerialConsole(), action, timeout)
	initrd := testInitramfs(t, arch, GuestModules(tree, "i6300esb"))
	return []Option{WithArch(arch), WithKernel(kernel, initrd, cmdline), WithWatchdog()}
}

var initramfs = struct {
	sync.Mutex
	dir   string
	paths map[string]string
}{paths: map[string]string{}}

// testInitramfs builds testdata/init for arch (GuestInitramfs) with opts,
// once per test binary run and set of modules.
func testInitramfs(t *testing.T, arch Arch, opts ...GuestOption) string {
	t.Helper()
	initramfs.Lock()
	defer initramfs.Unlock()
	var cfg guestConfig
	for _, o := range opts {
		o(&cfg)
	}
	key := string(arch) + " " + strings.Join(cfg.modules, ",")
	if p, ok := initramfs.paths[key]; ok {
		return p
	}
	if initramfs.dir == "" {
		dir, err := os.MkdirTemp("", "cairn-qemu-test-")
		if err != nil {
			t.Fatal(err)
		}
		initramfs.dir = dir
	}
	path, err := GuestInitramfs(initramfs.dir, arch, opts...)
	if err != nil {
		t.Fatal(err)
	}
	initramfs.paths[key] = path
	return path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if initramfs.dir != "" {
		os.RemoveAll(initramfs.dir)
	}
	os.Exit(code)
}

// archName is a subtest name.
func archName(a Arch) string { return strings.ToLower(string(a)) }
