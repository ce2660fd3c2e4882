package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseArch(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Arch
	}{
		{"amd64", AMD64}, {"x86_64", AMD64}, {"X86_64", AMD64},
		{"arm64", ARM64}, {"aarch64", ARM64},
	} {
		got, err := ParseArch(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseArch(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := ParseArch("riscv64"); err == nil {
		t.Error("ParseArch(riscv64) succeeded; want an error")
	}
}

// A kernel booted straight into an init that says hello and powers off.
func TestKernelBootPowerOff(t *testing.T) {
	for _, arch := range []Arch{AMD64, ARM64} {
		t.Run(archName(arch), func(t *testing.T) {
			t.Parallel()
			log := filepath.Join(t.TempDir(), "console.log")
			vm := StartT(t, append(testGuest(t, arch, "poweroff"), WithConsoleLog(log))...)

			m, err := vm.Expect(time.Minute, `cairn-test: hello from init arch=(\w+)`)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Groups[1]; got != string(arch) {
				t.Errorf("init runs as %s, want %s", got, arch)
			}
			t.Logf("QEMU start to init: %v", m.At)

			if err := vm.Wait(time.Minute); err != nil {
				t.Fatalf("guest powered off, but: %v", err)
			}
			t.Logf("QEMU start to exit: %v", vm.Since())
			if b, err := os.ReadFile(log); err != nil || string(b) != vm.Console() {
				t.Errorf("console log file holds %q (%v), want the console %q", b, err, vm.Console())
			}
		})
	}
}

// Expect looks only after its previous match, and when it gives up it says
// what the console showed.
func TestExpectOrderAndTimeout(t *testing.T) {
	t.Parallel()
	vm := StartT(t, testGuest(t, quickArch(t), "idle")...)

	if _, err := vm.Expect(time.Minute, "hello from init"); err != nil {
		t.Fatal(err)
	}
	tick, err := vm.Expect(10*time.Second, `tick (\d)`)
	if err != nil {
		t.Fatal(err)
	}
	if tick.Groups[1] != "1" {
		t.Errorf("first tick matched is %q, want 1", tick.Groups[1])
	}
	if _, err := vm.Expect(10*time.Second, "tick 3"); err != nil {
		t.Fatal(err)
	}

	// The hello line is there, but before the last match.
	_, err = vm.Expect(time.Second, "hello from init")
	if err == nil {
		t.Fatal("Expect matched a line before its previous match")
	}
	t.Logf("the error reads:\n%v", err)
	for _, want := range []string{`"hello from init"`, "cairn-test: tick 2", "cairn-test: tick 3", "looked only after the previous match"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Expect's error does not mention %q", want)
		}
	}
	// How long it waited: the 1 s asked for, or more when a loaded host
	// starves the test (it read 12.9 s once under a load average of 12).
	if m := regexp.MustCompile(`after waiting ([0-9.]+m?s)`).FindStringSubmatch(err.Error()); m == nil {
		t.Error("Expect's error does not say how long it waited")
	} else if d, perr := time.ParseDuration(m[1]); perr != nil || d < time.Second {
		t.Errorf("Expect's error says it waited %s, want at least the 1s asked for", m[1])
	}
}

// QMP talks to QEMU, PowerDown gives up on a guest that ignores the power
// button, Kill cuts the power, and cancelling Start's context does too.
func TestQMPPowerDownKill(t *testing.T) {
	t.Parallel()
	arch := quickArch(t)
	vm := StartT(t, append(testGuest(t, arch, "idle"), WithPortForward(0, 22))...)
	if _, err := vm.Expect(time.Minute, "hello from init"); err != nil {
		t.Fatal(err)
	}

	res, err := vm.QMP("query-status", nil)
	if err != nil {
		t.Fatal(err)
	}
	var status struct{ Status string }
	if err := json.Unmarshal(res, &status); err != nil || status.Status != "running" {
		t.Errorf("query-status = %s (%v), want status running", res, err)
	}

	// QEMU listens on the forwarded port, and QMP can pull the cable.
	port := vm.HostPort(22)
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Errorf("port forward to guest port 22: %v", err)
	} else {
		conn.Close()
	}
	if _, err := vm.QMP("set_link", map[string]any{"name": "net0", "up": false}); err != nil {
		t.Error(err)
	}

	// The tiny init has no driver for the power button, so it stays up.
	err = vm.PowerDown(500 * time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "power button") {
		t.Errorf("PowerDown of a guest ignoring the button = %v, want a timeout error", err)
	}

	pid := vm.cmd.Process.Pid
	if err := vm.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := vm.Wait(time.Second); !errors.Is(err, ErrKilled) {
		t.Errorf("Wait after Kill = %v, want ErrKilled", err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("QEMU (pid %d) still exists after Kill: %v", pid, err)
	}

	// A failed test's log holds the console and how QEMU ended.
	path, err := vm.saveLog(t.TempDir(), t.Name())
	if err != nil {
		t.Fatal(err)
	}
	log, _ := os.ReadFile(path)
	if filepath.Base(path) != "TestQMPPowerDownKill.log" || !strings.Contains(string(log), "cairn-test: tick 3") || !strings.Contains(string(log), "QEMU was killed") {
		t.Errorf("saved log %s:\n%s", path, log)
	}

	ctx, cancel := context.WithCancel(context.Background())
	vm2, err := Start(ctx, testGuest(t, arch, "idle")...)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := vm2.Wait(10 * time.Second); !errors.Is(err, ErrKilled) {
		t.Errorf("Wait after cancelling Start's context = %v, want ErrKilled", err)
	}
}

// With no disk, UEFI firmware finds nothing to boot and starts its shell:
// proof that code, variable store and serial console are wired up.
func TestUEFIFirmwareStarts(t *testing.T) {
	for _, arch := range []Arch{AMD64, ARM64} {
		t.Run(archName(arch), func(t *testing.T) {
			t.Parallel()
			needUEFI(t, arch)
			vars := filepath.Join(t.TempDir(), "vars.fd")
			vm := StartT(t, WithArch(arch), WithUEFI(), WithVarsFile(vars))

			m, err := vm.Expect(2*time.Minute, `BdsDxe: (loading|starting) Boot\w+ "EFI Internal Shell"`)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("QEMU start to boot manager: %v", m.At)
			m, err = vm.Expect(time.Minute, "UEFI Interactive Shell")
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("QEMU start to UEFI shell: %v", m.At)
			if fi, err := os.Stat(vars); err != nil || fi.Size() == 0 {
				t.Errorf("variable store %s not created: %v", vars, err)
			}
		})
	}
}

// A disk turns UEFI on; the firmware tries the disk first (an empty one here,
// so it finds nothing to load).
func TestUEFIBootsFromDisk(t *testing.T) {
	t.Parallel()
	needUEFI(t, AMD64)
	disk := filepath.Join(t.TempDir(), "empty.img")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 64<<20); err != nil {
		t.Fatal(err)
	}
	vm := StartT(t, WithArch(AMD64), WithDisk(CopyImage(t, disk)))

	if _, err := vm.Expect(2*time.Minute, `BdsDxe: failed to load Boot\w+ "UEFI Misc Device" from PciRoot`); err != nil {
		t.Fatal(err)
	}
}

// When QEMU or firmware is missing, the error names the package to install.
func TestMissingToolsSayWhatToInstall(t *testing.T) {
	saved := firmwares
	firmwares = map[Arch][]firmware{ARM64: {{code: "/nonexistent/AAVMF_CODE.fd", pkg: "qemu-efi-aarch64"}}}
	t.Cleanup(func() { firmwares = saved })
	_, err := Start(context.Background(), WithArch(ARM64), WithUEFI())
	if err == nil || !strings.Contains(err.Error(), "apt-get install qemu-efi-aarch64") {
		t.Errorf("Start without firmware = %v, want it to name qemu-efi-aarch64", err)
	}

	t.Setenv("PATH", t.TempDir())
	_, err = Start(context.Background(), WithArch(AMD64), WithUEFI())
	if err == nil || !strings.Contains(err.Error(), "apt-get install qemu-system-x86") {
		t.Errorf("Start without QEMU = %v, want it to name qemu-system-x86", err)
	}
}

// TestRaspi3BArgs checks the raspi3b machine's command line: the board's
// fixed CPUs and memory, the device tree, the console on the second
// serial port, the disk as the SD card, the NIC on USB.
func TestRaspi3BArgs(t *testing.T) {
	c := defaultConfig()
	for _, o := range []Option{WithMemory(512), WithRaspi3B("/x/dtb"), WithKernel("/x/k", "/x/i", "console=ttyS1"), WithDisk("/x/sd.img"), WithNetwork()} {
		o(&c)
	}
	v := &VM{accel: "tcg", hostPorts: map[int]int{}}
	args, err := v.buildArgs(&c, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Join(args, " ")
	for _, want := range []string{"-machine raspi3b -accel tcg -dtb /x/dtb", "-m 1024 -smp 4", "-serial null -serial stdio", "-kernel /x/k -initrd /x/i -append console=ttyS1",
		"-drive if=sd,format=raw,file=/x/sd.img", "-device usb-net,netdev=net0"} {
		if !strings.Contains(line, want) {
			t.Errorf("QEMU's arguments lack %q:\n%s", want, line)
		}
	}
	for _, not := range []string{"virtio", "pflash", "-bios"} {
		if strings.Contains(line, not) {
			t.Errorf("QEMU's arguments have %q:\n%s", not, line)
		}
	}
}

func TestNetBootArgs(t *testing.T) {
	c := defaultConfig()
	for _, o := range []Option{WithArch(AMD64), WithoutUEFI(), WithNetBoot("tap0", "52:54:00:00:00:01")} {
		o(&c)
	}
	v := &VM{accel: "tcg", hostPorts: map[int]int{}}
	args, err := v.buildArgs(&c, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Join(args, " ")
	want := "-netdev tap,id=net1,script=no,downscript=no,ifname=tap0 -device virtio-net-pci,netdev=net1,mac=52:54:00:00:00:01 -boot n"
	if !strings.Contains(line, want) || strings.Contains(line, "romfile=") || strings.Contains(line, "pflash") {
		t.Errorf("QEMU's arguments lack %q, or drop the NIC's ROM, or boot UEFI:\n%s", want, line)
	}
}
