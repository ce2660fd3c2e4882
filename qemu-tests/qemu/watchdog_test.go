package qemu

import (
	"fmt"
	"strconv"
	"testing"
	"time"
)

// The timeout the watchdog tests arm: short, yet three pings' worth of
// slack (Keep pings every timeout/3) for a TCG guest on a loaded host.
const testWatchdogTimeout = 5

// A guest that arms the watchdog and hangs, as a trial boot that wedges
// before the agent takes over, is reset by it one timeout later (QEMU,
// with -no-reboot, exits on the reset, which times it).
func TestWatchdogResetsHungGuest(t *testing.T) {
	for _, arch := range []Arch{AMD64, ARM64} {
		t.Run(archName(arch), func(t *testing.T) {
			t.Parallel()
			vm := StartT(t, watchdogGuest(t, arch, "watchdog-hang", testWatchdogTimeout)...)

			if _, err := vm.Expect(2*time.Minute, fmt.Sprintf("cairn-test: watchdog armed timeout=%ds", testWatchdogTimeout)); err != nil {
				t.Fatal(err)
			}
			hang, err := vm.Expect(10*time.Second, "cairn-test: hanging")
			if err != nil {
				t.Fatal(err)
			}
			if err := vm.Wait(4 * testWatchdogTimeout * time.Second); err != nil {
				t.Fatalf("the watchdog did not reset the hung guest: %v", err)
			}
			took := vm.ran - hang.At
			t.Logf("hang to reset: %v for a %ds timeout", took.Round(10*time.Millisecond), testWatchdogTimeout)
			if took < testWatchdogTimeout*time.Second*9/10 {
				t.Errorf("the guest was reset %v after it hung, before its %ds timeout", took, testWatchdogTimeout)
			}
		})
	}
}

// After a watchdog reset the guest boots again and the driver says the
// watchdog did it (WDIOF_CARDRESET), which lets the agent name the cause
// of a rollback.
func TestWatchdogBootStatus(t *testing.T) {
	t.Parallel()
	vm := StartT(t, append(watchdogGuest(t, quickArch(t), "watchdog-hang", testWatchdogTimeout), WithGuestReboot())...)

	for _, want := range []string{
		`cairn-test: watchdog "i6300ESB timer" bootstatus=\S+ cardreset=false`,
		"cairn-test: hanging",
		"Linux version", // the next boot
		`cairn-test: watchdog "i6300ESB timer" bootstatus=\S+ cardreset=true`,
	} {
		if _, err := vm.Expect(2*time.Minute, want); err != nil {
			t.Fatal(err)
		}
	}
}

// A guest that pings the watchdog for two timeouts and then disarms it,
// as the agent on a trial boot that commits, is not reset: QEMU (which
// exits on a reset here) still runs two timeouts later.
func TestWatchdogDisarmed(t *testing.T) {
	for _, arch := range []Arch{AMD64, ARM64} {
		t.Run(archName(arch), func(t *testing.T) {
			t.Parallel()
			vm := StartT(t, watchdogGuest(t, arch, "watchdog-disarm", testWatchdogTimeout)...)

			armed, err := vm.Expect(2*time.Minute, fmt.Sprintf("cairn-test: watchdog armed timeout=%ds", testWatchdogTimeout))
			if err != nil {
				t.Fatal(err)
			}
			m, err := vm.Expect(4*testWatchdogTimeout*time.Second, `cairn-test: watchdog disarmed after (\d+) pings state=inactive err=<nil>`)
			if err != nil {
				t.Fatal(err)
			}
			// Two timeouts at one ping per third of one: about 7.
			n, _ := strconv.Atoi(m.Groups[1])
			if n < 4 {
				t.Errorf("the guest pinged %d times in %v, want 4 or more", n, m.At-armed.At)
			}
			t.Logf("%d pings in %v, then disarmed", n, (m.At - armed.At).Round(10*time.Millisecond))
			if err := vm.Wait(2 * testWatchdogTimeout * time.Second); err == nil || vm.Exited() {
				t.Fatalf("the guest was reset after the watchdog was disarmed (QEMU exited: %v); console:\n%s", err, vm.console.tail(tailLines))
			}
		})
	}
}

// A kernel panic reboots the guest when the command line says panic=N: a
// trial slot whose kernel cannot reach its root ends in the boot loader,
// which then picks the old slot.
func TestPanicReboots(t *testing.T) {
	t.Parallel()
	arch := quickArch(t)
	kernel := testKernel(t, arch)
	cmdline := "console=" + arch.SerialConsole() + " quiet panic=1 cairntest=panic"
	vm := StartT(t, WithArch(arch), WithKernel(kernel, testInitramfs(t, arch), cmdline), WithGuestReboot())

	if _, err := vm.Expect(time.Minute, "cairn-test: hello from init"); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.Expect(10*time.Second, "Kernel panic - not syncing: Attempted to kill init"); err != nil {
		t.Fatal(err)
	}
	panicked, err := vm.Expect(10*time.Second, "Rebooting in 1 seconds")
	if err != nil {
		t.Fatal(err)
	}
	again, err := vm.Expect(time.Minute, "cairn-test: hello from init")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("panic to the next boot's init: %v", (again.At - panicked.At).Round(10*time.Millisecond))
}
