package qemu

import (
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

var initramfs = struct {
	sync.Mutex
	dir   string
	paths map[Arch]string
}{paths: map[Arch]string{}}

// testInitramfs builds testdata/init for arch (GuestInitramfs), once per
// test binary run.
func testInitramfs(t *testing.T, arch Arch) string {
	t.Helper()
	initramfs.Lock()
	defer initramfs.Unlock()
	if p, ok := initramfs.paths[arch]; ok {
		return p
	}
	if initramfs.dir == "" {
		dir, err := os.MkdirTemp("", "cairn-qemu-test-")
		if err != nil {
			t.Fatal(err)
		}
		initramfs.dir = dir
	}
	path, err := GuestInitramfs(initramfs.dir, arch)
	if err != nil {
		t.Fatal(err)
	}
	initramfs.paths[arch] = path
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
