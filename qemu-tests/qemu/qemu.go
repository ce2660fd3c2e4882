// Package qemu boots Cairn disk images (or a kernel and initramfs) under QEMU
// and lets end-to-end tests assert on the serial console.
//
// A test reads like a story:
//
//	vm := qemu.StartT(t,
//		qemu.WithArch(qemu.ARM64),
//		qemu.WithDisk(qemu.CopyImage(t, "out/cairn-qemu-arm64.img")),
//	)
//	m, err := vm.Expect(2*time.Minute, `cairn: init ok slot=(\w+)`)
//	if err != nil {
//		t.Fatal(err)
//	}
//	t.Logf("slot %s up %v after QEMU started", m.Groups[1], m.At)
//	if err := vm.PowerDown(time.Minute); err != nil {
//		t.Fatal(err)
//	}
//
// QEMU uses KVM when /dev/kvm works for the guest's architecture and TCG
// otherwise; set CAIRN_QEMU_ACCEL=tcg or =kvm to force one. A VM never
// outlives its test: QEMU runs in its own process group, is killed when the
// context given to Start ends, on test cleanup, and when the test binary dies.
package qemu

import (
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
)

// Arch is a guest architecture, named as Go names it (GOARCH).
type Arch string

// Guest architectures Cairn builds images for.
const (
	AMD64 Arch = "amd64"
	ARM64 Arch = "arm64"
)

// ParseArch parses a Go (amd64, arm64) or kernel/QEMU (x86_64, aarch64)
// architecture name.
func ParseArch(s string) (Arch, error) {
	switch strings.ToLower(s) {
	case "amd64", "x86_64", "x86-64":
		return AMD64, nil
	case "arm64", "aarch64":
		return ARM64, nil
	}
	return "", fmt.Errorf("unknown architecture %q (want amd64/x86_64 or arm64/aarch64)", s)
}

// String returns the Go name of the architecture.
func (a Arch) String() string { return string(a) }

// SerialConsole is the kernel's name for the serial port QEMU's console is
// wired to, for a kernel command line's console= parameter: ttyS0 on the PC,
// ttyAMA0 (PL011) on the arm64 virt machine.
func (a Arch) SerialConsole() string {
	if a == ARM64 {
		return "ttyAMA0"
	}
	return "ttyS0"
}

// hostArch is the architecture of this machine; a guest of the same
// architecture may use KVM.
var hostArch = Arch(runtime.GOARCH)

// Option configures a VM for Start.
type Option func(*config)

type portForward struct {
	host, guest int
	guestAddr   string // empty: the address QEMU's DHCP server hands out
}

type config struct {
	arch        Arch
	disks       []string
	memMiB      int
	cpus        int
	uefi        bool
	uefiSet     bool
	varsFile    string
	kernel      string
	initrd      string
	cmdline     string
	guestReboot bool
	watchdog    bool
	network     bool
	isolated    bool   // network, cut off (restrict=on)
	tap         string // a tap device for the one NIC, with its option ROM
	mac         string
	forwards    []portForward
	guestFwds   []string // guest address → host address (guestfwd)
	extraArgs   []string
	bios        string // -bios, when not UEFI
	raspiDTB    string // the device tree of -M raspi3b; empty: the PC or virt
	consoleLog  string
	stdin       io.Reader
	stdout      io.Writer
}

func defaultConfig() config {
	return config{arch: hostArch, memMiB: 512, cpus: 1}
}

// WithArch sets the guest architecture. The default is the host's.
func WithArch(a Arch) Option {
	return func(c *config) { c.arch = a }
}

// WithDisk attaches a raw disk image as a virtio-blk PCI disk, writable: pass
// the test's own copy (see CopyImage), never a build output other tests share.
// Disks are attached in the order given; the first one is the one firmware
// boots from. A disk turns UEFI on unless WithKernel is also given.
func WithDisk(path string) Option {
	return func(c *config) { c.disks = append(c.disks, path) }
}

// WithMemory sets the guest's memory in MiB. The default is 512.
func WithMemory(mib int) Option {
	return func(c *config) { c.memMiB = mib }
}

// WithCPUs sets the number of virtual CPUs. The default is 1: under TCG each
// vCPU is a host thread, and more vCPUs than host cores slow the guest down.
func WithCPUs(n int) Option {
	return func(c *config) { c.cpus = n }
}

// WithUEFI boots through UEFI firmware: OVMF on the q35 machine for amd64,
// AAVMF on the virt machine for arm64. It is on by default when a disk is
// given without a kernel. Each VM gets a fresh copy of the firmware's variable
// store (NVRAM) unless WithVarsFile names one.
func WithUEFI() Option {
	return func(c *config) { c.uefi, c.uefiSet = true, true }
}

// WithoutUEFI boots without firmware of our choosing (SeaBIOS on amd64,
// nothing on arm64); with WithKernel QEMU then loads the kernel itself.
func WithoutUEFI() Option {
	return func(c *config) { c.uefi, c.uefiSet = false, true }
}

// UBootARM64 is Debian's u-boot-qemu build of U-Boot for QEMU's arm64
// virt machine (qemu_arm64), whose distro boot reads extlinux.conf from
// the disk: WithBIOS(UBootARM64).
const UBootARM64 = "/usr/lib/u-boot/qemu_arm64/u-boot.bin"

// WithBIOS boots the firmware image path (-bios) instead of UEFI, such as
// UBootARM64.
func WithBIOS(path string) Option {
	return func(c *config) { c.bios, c.uefi, c.uefiSet = path, false, true }
}

// WithRaspi3B runs QEMU's Raspberry Pi 3 Model B (-M raspi3b, BCM2837,
// arm64) rather than the virt machine, with what the board fixes: 4
// Cortex-A53s, 1 GiB, no UEFI. The firmware's part is the caller's: it
// gives the kernel, initramfs and command line (WithKernel) and dtb, the
// device tree QEMU hands the kernel. The disk is the SD card (QEMU wants
// its size a power of two); the network is QEMU's usb-net (CDC Ethernet)
// on the SoC's DWC2 USB; the console is the second serial port, the
// mini-UART (ttyS1 under the upstream device tree), the first (the PL011)
// going nowhere. The guest resets through the SoC's watchdog
// (bcm2835_wdt): the Pi has no PSCI.
func WithRaspi3B(dtb string) Option {
	return func(c *config) {
		c.arch, c.raspiDTB, c.memMiB, c.cpus = ARM64, dtb, 1024, 4
		c.uefi, c.uefiSet = false, true
	}
}

// WithVarsFile keeps the UEFI variable store (NVRAM: boot entries, boot
// order) in path, so that a test booting the same disk in two successive VMs
// sees what the first boot stored. A missing file is created from the
// firmware's template. It implies WithUEFI.
func WithVarsFile(path string) Option {
	return func(c *config) {
		c.varsFile = path
		c.uefi, c.uefiSet = true, true
	}
}

// WithKernel boots kernel directly, with initrd (may be empty) and the kernel
// command line cmdline, without going through firmware: the quick way to run
// an init under test. Add "console=" + arch.SerialConsole() to cmdline to see
// the kernel on the console.
func WithKernel(kernel, initrd, cmdline string) Option {
	return func(c *config) { c.kernel, c.initrd, c.cmdline = kernel, initrd, cmdline }
}

// WithGuestReboot lets a guest reboot restart the machine inside the same
// QEMU process. By default QEMU runs with -no-reboot: a reboot makes QEMU
// exit, so a test sees each boot as its own VM and can swap disks or
// inspect them in between. A reboot is the guest's own, a kernel panic's
// (panic=N, N > 0 seconds later; panic=-1 at once) or a watchdog reset
// (WithWatchdog) alike.
func WithGuestReboot() Option {
	return func(c *config) { c.guestReboot = true }
}

// WithWatchdog gives the guest QEMU's Intel 6300ESB watchdog, a PCI
// device on both machines (Linux's driver: i6300esb, a module in Debian's
// kernels for amd64 and arm64), set to reset the machine when it fires
// (-action watchdog=reset). That reset counts as a guest reboot: without
// WithGuestReboot QEMU exits (Wait returns nil), with it the guest boots
// again in the same process, and its driver then reports the watchdog
// as the reason (WDIOF_CARDRESET in its boot status).
func WithWatchdog() Option {
	return func(c *config) { c.watchdog = true }
}

// WithNetwork gives the guest one virtio-net NIC on QEMU's user-mode network
// (10.0.2.0/24, gateway and DNS at 10.0.2.2/10.0.2.3, outbound only unless
// ports are forwarded). By default a VM has no network device at all.
func WithNetwork() Option {
	return func(c *config) { c.network = true }
}

// WithPortForward forwards TCP port hostPort on the host's 127.0.0.1 to
// guestPort in the guest, and implies WithNetwork. A hostPort of 0 picks a
// free port; VM.HostPort tells which.
func WithPortForward(hostPort, guestPort int) Option {
	return func(c *config) {
		c.network = true
		c.forwards = append(c.forwards, portForward{host: hostPort, guest: guestPort})
	}
}

// WithPortForwardTo forwards TCP hostPort on 127.0.0.1 to guestPort at
// guestAddr, for a guest with a static address in QEMU's user network
// (10.0.2.0/24) other than the one its DHCP server hands out.
func WithPortForwardTo(hostPort int, guestAddr string, guestPort int) Option {
	return func(c *config) {
		c.network = true
		c.forwards = append(c.forwards, portForward{host: hostPort, guest: guestPort, guestAddr: guestAddr})
	}
}

// WithGuestForward makes TCP connections the guest opens to guestAddr
// (ip:port in QEMU's user network, e.g. 10.0.2.100:5000) reach hostAddr
// (ip:port on the host), even on an isolated network: a registry on the
// host's loopback for a node on a site without an uplink.
func WithGuestForward(guestAddr, hostAddr string) Option {
	return func(c *config) {
		c.network = true
		c.guestFwds = append(c.guestFwds, "tcp:"+guestAddr+"-tcp:"+hostAddr)
	}
}

// WithIsolatedNetwork cuts the user-mode network off from the host and the
// world (QEMU's restrict=on): only forwarded ports reach the guest, which
// can reach nothing — a node on a site with no uplink.
func WithIsolatedNetwork() Option {
	return func(c *config) { c.network, c.isolated = true, true }
}

// WithNetBoot boots the guest from the network: its one NIC, virtio-net
// with the iPXE option ROM QEMU carries, is on the tap device tap, which
// the caller makes (in the network namespace QEMU starts in, where it
// joins a bridge), and has the address mac. Without UEFI, SeaBIOS runs
// the ROM's PXE; with it, OVMF's own network stack runs.
func WithNetBoot(tap, mac string) Option {
	return func(c *config) { c.tap, c.mac = tap, mac }
}

// WithExtraArgs appends arguments to QEMU's command line as they are.
func WithExtraArgs(args ...string) Option {
	return func(c *config) { c.extraArgs = append(c.extraArgs, args...) }
}

// WithConsoleLog also writes the serial console to the file at path as it
// arrives (handy with tail -f while a long test runs).
func WithConsoleLog(path string) Option {
	return func(c *config) { c.consoleLog = path }
}

// WithTerminal attaches the serial console to a terminal: in is typed into
// the guest's console and the console is also copied to out. `make run`
// uses it with os.Stdin and os.Stdout.
func WithTerminal(in io.Reader, out io.Writer) Option {
	return func(c *config) { c.stdin, c.stdout = in, out }
}

// freePort asks the kernel for a free TCP port on 127.0.0.1. Another process
// may take it before QEMU binds it; that is rare enough for tests.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port for a port forward: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
