// Command init is the smallest possible guest for the harness's own tests:
// run as /init from an initramfs, it says hello on the console and then does
// what the kernel command line's cairntest= parameter asks (the kernel hands
// unknown name=value parameters to init as environment variables):
//
//	cairntest=poweroff  power the machine off
//	cairntest=meminfo   print what the kernel alone holds (see memory.go), then power off
//	cairntest=idle      print a few ticks, then wait forever (the default)
//	cairntest=panic     exit, which panics the kernel (reboots with panic=N)
//	cairntest=watchdog-hang    arm the watchdog (cairntest_timeout=SECONDS,
//	                           default 5), close it armed and wait forever
//	cairntest=watchdog-disarm  arm it, ping it for two timeouts, disarm it,
//	                           then wait forever
//
// The watchdog actions need its driver in the initramfs (GuestModules).
package main

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
	"time"
)

func main() {
	fmt.Printf("cairn-test: hello from init arch=%s\n", runtime.GOARCH)
	switch os.Getenv("cairntest") {
	case "meminfo":
		printMemory()
		powerOff()
	case "poweroff":
		powerOff()
	case "panic":
		fmt.Println("cairn-test: panicking")
		os.Exit(3) // PID 1 exiting: "Attempted to kill init!"
	case "watchdog-hang":
		watchdogHang()
	case "watchdog-disarm":
		watchdogDisarm()
	default:
		for i := 1; i <= 3; i++ {
			time.Sleep(100 * time.Millisecond)
			fmt.Printf("cairn-test: tick %d\n", i)
		}
	}
	for { // PID 1 must not exit: the kernel would panic.
		time.Sleep(time.Hour)
	}
}

func powerOff() {
	fmt.Println("cairn-test: powering off")
	syscall.Sync()
	if err := syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		fmt.Println("cairn-test: power off:", err)
	}
}
