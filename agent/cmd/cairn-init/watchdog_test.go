package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent/boot/cmdline"
)

// fakeWatchdog points stage 1 at path and captures the console lines and
// the log.
func fakeWatchdog(t *testing.T, path string) (said *[]string, logged *bytes.Buffer) {
	t.Helper()
	oldPath, oldSay, oldLog := watchdogPath, say, log
	t.Cleanup(func() { watchdogPath, say, log = oldPath, oldSay, oldLog })
	watchdogPath = path
	var lines []string
	say = func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) }
	logged = new(bytes.Buffer)
	log = slog.New(slog.NewTextHandler(logged, nil))
	return &lines, logged
}

func parse(t *testing.T, s string) cmdline.Cmdline {
	t.Helper()
	cl, err := cmdline.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// The boot goes on whatever the watchdog does; only what it says differs.
// (Arming a real one is proven under QEMU: qemu-tests/qemu's watchdog tests.)
func TestArmWatchdog(t *testing.T) {
	for _, tt := range []struct {
		name    string
		cmdline string
		device  bool // a file stands for the device: no watchdog ioctl works on it
		say     []string
		log     string
		written string // what was written to the device
	}{
		{
			name:    "no device",
			cmdline: "cairn.slot=a",
			log:     "no watchdog device",
		},
		{
			name:    "off",
			cmdline: "cairn.slot=a cairn.watchdog=0",
			device:  true,
			log:     "watchdog off",
		},
		{
			name:    "a bad parameter falls back to the boot timeout",
			cmdline: "cairn.slot=a cairn.watchdog=2m",
			say:     []string{`warning: kernel command line has cairn.watchdog="2m", which is not a number of seconds`},
			log:     "no watchdog device",
		},
		{
			name:    "a driver that refuses the timeout is left off",
			cmdline: "cairn.slot=a cairn.watchdog=30",
			device:  true,
			say:     []string{"warning: watchdog ", "setting the timeout to 30s", "watchdog left off (set cairn.watchdog to a value the driver accepts)"},
			written: "V",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "watchdog")
			if tt.device {
				if err := os.WriteFile(path, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			said, logged := fakeWatchdog(t, path)
			armWatchdog(parse(t, tt.cmdline))

			all := strings.Join(*said, "\n")
			for _, want := range tt.say {
				if !strings.Contains(all, want) {
					t.Errorf("console lines %q lack %q", *said, want)
				}
			}
			if len(tt.say) == 0 && len(*said) != 0 {
				t.Errorf("console lines %q, want none", *said)
			}
			if strings.Contains(all, "watchdog armed") {
				t.Errorf("console says armed: %q", *said)
			}
			if !strings.Contains(logged.String(), tt.log) {
				t.Errorf("log %q lacks %q", logged, tt.log)
			}
			if tt.device {
				if b, _ := os.ReadFile(path); string(b) != tt.written {
					t.Errorf("wrote %q to the device, want %q", b, tt.written)
				}
			}
		})
	}
}
