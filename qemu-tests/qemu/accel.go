package qemu

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
)

// accelEnv forces the accelerator: "kvm" or "tcg".
const accelEnv = "CAIRN_QEMU_ACCEL"

// accelFor returns QEMU's accelerator for a guest of arch: "kvm" when KVM
// works for it, else "tcg".
func accelFor(arch Arch) (string, error) {
	switch v := os.Getenv(accelEnv); v {
	case "kvm", "tcg":
		return v, nil
	case "":
	default:
		return "", fmt.Errorf("%s=%q: want kvm or tcg (or unset to detect)", accelEnv, v)
	}
	if arch == hostArch && kvmWorks() {
		return "kvm", nil
	}
	return "tcg", nil
}

// kvmWorks reports whether this host can run KVM guests of its own
// architecture. Opening /dev/kvm is not enough: on some nested hosts (this
// project's CI sandbox among them) /dev/kvm opens and even creates VMs, but
// the CPU lacks VMX/SVM and a guest hangs in its first instructions. So on
// x86 the CPU flags must say so too.
var kvmWorks = sync.OnceValue(func() bool {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	const (
		kvmGetAPIVersion = 0xAE00 // _IO(KVMIO, 0x00)
		kvmCreateVM      = 0xAE01 // _IO(KVMIO, 0x01)
		kvmAPIVersion    = 12
	)
	v, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), kvmGetAPIVersion, 0)
	if errno != 0 || v != kvmAPIVersion {
		return false
	}
	vm, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), kvmCreateVM, 0)
	if errno != 0 {
		return false
	}
	syscall.Close(int(vm))
	if hostArch == AMD64 {
		return cpuHasVirtualization()
	}
	return true
})

// cpuHasVirtualization reports whether /proc/cpuinfo lists Intel VT-x (vmx)
// or AMD-V (svm).
func cpuHasVirtualization() bool {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(b)) {
		name, flags, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(name) != "flags" {
			continue
		}
		for flag := range strings.FieldsSeq(flags) {
			if flag == "vmx" || flag == "svm" {
				return true
			}
		}
		return false
	}
	return false
}
