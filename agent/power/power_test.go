package power

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func event(typ, code uint16, value int32) []byte {
	b := make([]byte, eventSize)
	binary.LittleEndian.PutUint16(b[16:], typ)
	binary.LittleEndian.PutUint16(b[18:], code)
	binary.LittleEndian.PutUint32(b[20:], uint32(value))
	return b
}

func TestParseEvents(t *testing.T) {
	var b []byte
	b = append(b, event(evKey, keyPower, 1)...)
	b = append(b, event(0, 0, 0)...) // EV_SYN
	b = append(b, event(evKey, keyPower, 0)...)
	b = append(b, 1, 2, 3) // partial
	got := ParseEvents(b)
	want := []Event{{evKey, keyPower, 1}, {0, 0, 0}, {evKey, keyPower, 0}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseEvents() = %v, want %v", got, want)
	}
	for i, want := range []bool{true, false, false} {
		if IsPowerPress(got[i]) != want {
			t.Errorf("IsPowerPress(%v) = %v, want %v", got[i], !want, want)
		}
	}
	if IsPowerPress(Event{evKey, 115, 1}) {
		t.Error("volume-up counted as power")
	}
}

func TestWatchPowerKey(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "event0")
	if err := os.WriteFile(p, append(event(evKey, 30, 1), event(evKey, keyPower, 1)...), 0o644); err != nil {
		t.Fatal(err)
	}
	old := InputGlob
	InputGlob = filepath.Join(dir, "event*")
	t.Cleanup(func() { InputGlob = old })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	select {
	case <-WatchPowerKey(ctx):
	case <-time.After(5 * time.Second):
		t.Fatal("power key press not reported")
	}
}

func TestShutdown(t *testing.T) {
	origUserProcesses := userProcesses
	var calls []string
	alive := 3 // processes left at each look: 3, 2, 1, then none
	userProcesses = func() int {
		if alive > 0 {
			alive--
		}
		calls = append(calls, "count")
		return alive
	}
	kill = func(pid int, sig unix.Signal) error {
		calls = append(calls, "kill "+unix.SignalName(sig))
		return nil
	}
	sync = func() { calls = append(calls, "sync") }
	unmount = func(p string, _ int) error { calls = append(calls, "umount "+p); return unix.EBUSY }
	mount = func(_, p, _ string, flags uintptr, _ string) error {
		calls = append(calls, "remount-ro "+p)
		return nil
	}
	var gotCmd int
	reboot = func(cmd int) error { gotCmd = cmd; return nil }
	sleep = func(time.Duration) {}
	origMountPoints := mountPoints
	mountPoints = func() ([]string, error) {
		return []string{"/", "/proc", "/var", "/boot", "/run/containerd/task/a/rootfs", "/var/lib/kubelet/pods/p/volumes/token"}, nil
	}
	t.Cleanup(func() {
		kill, sync, reboot, unmount, mount, sleep = unix.Kill, unix.Sync, unix.Reboot, unix.Unmount, unix.Mount, time.Sleep
		userProcesses, mountPoints = origUserProcesses, origMountPoints
	})

	var console bytes.Buffer
	if err := Shutdown(Reboot, Options{Console: &console, Unmount: []string{"/var"}}); err != nil {
		t.Fatal(err)
	}
	if console.String() != "cairn: reboot\n" {
		t.Errorf("console = %q", console.String())
	}
	if gotCmd != unix.LINUX_REBOOT_CMD_RESTART {
		t.Errorf("reboot cmd = %#x, want RESTART", gotCmd)
	}
	// What a Kubernetes node mounts after /var goes first, the last
	// mounted first: a pod volume below it, a container's root file
	// system (an overlay with its upper directory on /var), the ESP;
	// what was there before /var stays.
	want := []string{"count", "kill SIGTERM", "count", "count", "count", "sync",
		"umount /var/lib/kubelet/pods/p/volumes/token", "umount /var/lib/kubelet/pods/p/volumes/token",
		"umount /run/containerd/task/a/rootfs", "umount /run/containerd/task/a/rootfs",
		"umount /boot", "umount /boot",
		"umount /var", "remount-ro /var", "umount /var", "sync"}
	if !reflect.DeepEqual(calls, want) {
		t.Errorf("calls = %q\nwant    %q", calls, want)
	}
}

func TestParseMountInfo(t *testing.T) {
	info := `22 1 254:2 / / ro,relatime - squashfs /dev/vda2 ro
30 22 254:4 / /var rw,nosuid,nodev,noatime - ext4 /dev/vda4 rw
41 30 0:45 / /var/lib/kubelet/pods/x/volumes/kubernetes.io~projected/kube\040api rw - tmpfs tmpfs rw
`
	got := parseMountInfo(info)
	want := []string{"/", "/var", "/var/lib/kubelet/pods/x/volumes/kubernetes.io~projected/kube api"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseMountInfo = %q, want %q", got, want)
	}
	if a := mountedAfter("/var", append(got, got[2])); !reflect.DeepEqual(a, []string{want[2]}) {
		t.Errorf("mountedAfter = %q", a)
	}
}

// TestShutdownWaitsForKilled: processes that outlive SIGTERM are killed,
// and waited for (they hold their files until gone) before unmounting.
func TestShutdownWaitsForKilled(t *testing.T) {
	origUserProcesses, origMountPoints := userProcesses, mountPoints
	var calls []string
	killed, left := false, 2 // after SIGKILL, seen twice more
	userProcesses = func() int {
		if killed && left > 0 {
			left--
			return 1
		}
		if killed {
			return 0
		}
		return 1
	}
	kill = func(pid int, sig unix.Signal) error {
		calls = append(calls, "kill "+unix.SignalName(sig))
		killed = killed || sig == unix.SIGKILL
		return nil
	}
	sync = func() {}
	unmount = func(p string, _ int) error {
		calls = append(calls, fmt.Sprintf("umount %s (alive %v)", p, left > 0))
		return nil
	}
	reboot = func(int) error { return nil }
	sleep = func(time.Duration) {}
	mountPoints = func() ([]string, error) { return []string{"/", "/var"}, nil }
	t.Cleanup(func() {
		kill, sync, reboot, unmount, mount, sleep = unix.Kill, unix.Sync, unix.Reboot, unix.Unmount, unix.Mount, time.Sleep
		userProcesses, mountPoints = origUserProcesses, origMountPoints
	})
	if err := Shutdown(Poweroff, Options{Unmount: []string{"/var"}, Grace: time.Second}); err != nil {
		t.Fatal(err)
	}
	want := []string{"kill SIGTERM", "kill SIGKILL", "umount /var (alive false)"}
	if !reflect.DeepEqual(calls, want) {
		t.Errorf("calls = %q\nwant    %q", calls, want)
	}
}

// TestShutdownForcesReadOnly: a /var that stays busy with no process left
// is forced read-only by the kernel (SysRq u) before the power goes.
func TestShutdownForcesReadOnly(t *testing.T) {
	origUserProcesses, origMountPoints, origEmergency, origReadOnly := userProcesses, mountPoints, emergencyRemount, readOnly
	var calls []string
	forced := false
	userProcesses = func() int { return 0 }
	sync = func() { calls = append(calls, "sync") }
	unmount = func(p string, flags int) error {
		calls = append(calls, fmt.Sprintf("umount %s %d", p, flags))
		return unix.EBUSY
	}
	mount = func(_, p, _ string, _ uintptr, _ string) error { return unix.EBUSY }
	emergencyRemount = func() error { calls = append(calls, "sysrq u"); forced = true; return nil }
	readOnly = func(string) bool { return forced }
	reboot = func(int) error { calls = append(calls, "reboot"); return nil }
	sleep = func(time.Duration) {}
	mountPoints = func() ([]string, error) { return []string{"/", "/var"}, nil }
	t.Cleanup(func() {
		kill, sync, reboot, unmount, mount, sleep = unix.Kill, unix.Sync, unix.Reboot, unix.Unmount, unix.Mount, time.Sleep
		userProcesses, mountPoints, emergencyRemount, readOnly = origUserProcesses, origMountPoints, origEmergency, origReadOnly
	})
	var console bytes.Buffer
	if err := Shutdown(Poweroff, Options{Console: &console, Unmount: []string{"/var"}}); err != nil {
		t.Fatal(err)
	}
	want := []string{"sync", "umount /var 0", "sysrq u", fmt.Sprintf("umount /var %d", unix.MNT_DETACH), "sync", "reboot"}
	if !reflect.DeepEqual(calls, want) {
		t.Errorf("calls = %q\nwant    %q", calls, want)
	}
	if !strings.Contains(console.String(), "forced read-only: true") {
		t.Errorf("console = %q", console.String())
	}
}

// A test that reached the real SysRq would remount this machine read-only.
func init() { emergencyRemount = func() error { panic("a test reached SysRq u") } }
