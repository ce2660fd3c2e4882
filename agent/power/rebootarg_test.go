package power

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestRestart2Arg(t *testing.T) {
	for _, tt := range []struct {
		arg     string
		want    []byte
		wantErr string
	}{
		{"0 tryboot", []byte("0 tryboot\x00"), ""},
		{"3", []byte("3\x00"), ""},
		{strings.Repeat("x", MaxRebootArg), append([]byte(strings.Repeat("x", MaxRebootArg)), 0), ""},
		{"", nil, "empty"},
		{strings.Repeat("x", MaxRebootArg+1), nil, "more than the 255"},
		{"0\x00tryboot", nil, "control character"},
		{"0 tryboot\n", nil, "control character"},
	} {
		got, err := restart2Arg(tt.arg)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("restart2Arg(%q) = %q, %v; want an error saying %q", tt.arg, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !bytes.Equal(got, tt.want) {
			t.Errorf("restart2Arg(%q) = %q, %v; want %q", tt.arg, got, err, tt.want)
		}
	}
}

// TestRebootArgHandOff: what the agent sets, PID 1 reads; nothing set,
// or removed again, reads as a plain reboot; a damaged file is an error.
func TestRebootArgHandOff(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "cairn", "reboot-arg")
	if arg, err := ReadRebootArg(path); arg != "" || err != nil {
		t.Fatalf("no file: ReadRebootArg = %q, %v; want a plain reboot", arg, err)
	}
	if err := SetRebootArg(path, "0 tryboot"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "0 tryboot\n" {
		t.Errorf("file holds %q", b)
	}
	if arg, err := ReadRebootArg(path); arg != "0 tryboot" || err != nil {
		t.Errorf("ReadRebootArg = %q, %v", arg, err)
	}
	if err := SetRebootArg(path, ""); err != nil {
		t.Fatal(err)
	}
	if arg, err := ReadRebootArg(path); arg != "" || err != nil {
		t.Errorf("after removing: ReadRebootArg = %q, %v", arg, err)
	}
	if err := SetRebootArg(path, ""); err != nil {
		t.Errorf("removing it twice: %v", err)
	}
	if err := SetRebootArg(path, "0\ntryboot"); err == nil {
		t.Error("SetRebootArg took a line break")
	}
	for content, want := range map[string]string{
		"0 tryboot":                     "line break",
		"\n":                            "empty",
		"0\x01\n":                       "control character",
		strings.Repeat("x", 300) + "\n": "line break",
		strings.Repeat("x", 256) + "\n": "more than the 255",
		"0 tryboot\nreboot=now\n":       "control character",
	} {
		os.WriteFile(path, []byte(content), 0o644)
		if arg, err := ReadRebootArg(path); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
			t.Errorf("file %q: ReadRebootArg = %q, %v; want an error naming the file and saying %q", content, arg, err, want)
		}
	}
}

// TestShutdownRebootArg: a reboot with an argument is RESTART2 with it,
// after everything else; if that fails, a plain restart; a poweroff
// ignores it.
func TestShutdownRebootArg(t *testing.T) {
	origUserProcesses, origMountPoints, origRestart2 := userProcesses, mountPoints, restart2
	t.Cleanup(func() {
		kill, sync, reboot, unmount, mount, sleep = unix.Kill, unix.Sync, unix.Reboot, unix.Unmount, unix.Mount, time.Sleep
		userProcesses, mountPoints, restart2 = origUserProcesses, origMountPoints, origRestart2
	})
	var calls []string
	userProcesses = func() int { return 0 }
	sync = func() { calls = append(calls, "sync") }
	unmount = func(p string, _ int) error { calls = append(calls, "umount "+p); return nil }
	mountPoints = func() ([]string, error) { return []string{"/", "/var"}, nil }
	sleep = func(time.Duration) {}
	reboot = func(cmd int) error {
		calls = append(calls, map[int]string{unix.LINUX_REBOOT_CMD_RESTART: "restart", unix.LINUX_REBOOT_CMD_POWER_OFF: "poweroff"}[cmd])
		return nil
	}
	var fail error
	restart2 = func(arg string) error { calls = append(calls, "restart2 "+arg); return fail }

	for _, tt := range []struct {
		name    string
		action  Action
		fail    error
		want    []string
		console string
	}{
		{"tryboot", Reboot, nil, []string{"sync", "umount /var", "sync", "restart2 0 tryboot"}, "cairn: reboot\n"},
		{"RESTART2 refused", Reboot, unix.EINVAL, []string{"sync", "umount /var", "sync", "restart2 0 tryboot", "restart"}, "cairn: reboot\ncairn: warning: invalid argument; rebooting without it\n"},
		{"poweroff", Poweroff, nil, []string{"sync", "umount /var", "sync", "poweroff"}, "cairn: poweroff\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			calls, fail = nil, tt.fail
			var console bytes.Buffer
			// /run/cairn/boot/a is not mounted: skipped.
			Shutdown(tt.action, Options{Console: &console, Unmount: []string{"/run/cairn/boot/a", "/var"}, RebootArg: "0 tryboot"})
			if strings.Join(calls, "; ") != strings.Join(tt.want, "; ") || console.String() != tt.console {
				t.Errorf("calls = %q, console %q\nwant    %q, console %q", calls, console.String(), tt.want, tt.console)
			}
		})
	}
}
