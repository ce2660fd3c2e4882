package api

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-edge/cairn/agent/release"
)

// fakeSystem points the seams at testdata and returns what PID 1 was sent.
func fakeSystem(t *testing.T, proc string) chan unix.Signal {
	t.Helper()
	sigs := make(chan unix.Signal, 1)
	oldProc, oldSys, oldConf, oldHost, oldIfs, oldSig, oldDelay := procRoot, sysRoot, sysctlConf, hostname, interfaces, signalInit, powerDelay
	t.Cleanup(func() {
		procRoot, sysRoot, sysctlConf, hostname, interfaces, signalInit, powerDelay = oldProc, oldSys, oldConf, oldHost, oldIfs, oldSig, oldDelay
	})
	procRoot, sysRoot, sysctlConf = proc, "testdata/sys", "testdata/sysctl.conf"
	hostname = func() (string, error) { return "edge-1", nil }
	interfaces = func() ([]Address, error) { return []Address{{Interface: "eth0", Address: "10.0.2.15/24"}}, nil }
	signalInit = func(sig unix.Signal) error { sigs <- sig; return nil }
	powerDelay = 0
	return sigs
}

func TestLocalNodeStatus(t *testing.T) {
	fakeSystem(t, "testdata/proc")
	n := &LocalNode{Release: release.Release{Name: "minimal", Version: "0.1.0", Board: "qemu-x86_64", Arch: "amd64"}, Slot: "a"}
	got, err := n.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := testNodeStatus
	want.UptimeSeconds = 3723.52
	if !sameJSON(t, got, want) {
		t.Errorf("Status =\n%+v\nwant\n%+v", got, want)
	}
}

func TestLocalNodeStatusErrors(t *testing.T) {
	tests := []struct {
		file, content, want string
	}{
		{"uptime", "", "has no uptime"},
		{"uptime", "soon 1", "/proc/uptime"},
		{"loadavg", "0.1 0.2\n", "fewer than 3 fields"},
		{"loadavg", "a b c d", "/proc/loadavg"},
		{"meminfo", "MemFree: 1 kB\n", "no MemTotal"},
		{"meminfo", "MemTotal: lots kB\n", "MemTotal"},
	}
	for _, tt := range tests {
		t.Run(tt.file+" "+tt.content, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range []string{"uptime", "loadavg", "meminfo"} {
				b, _ := os.ReadFile(filepath.Join("testdata/proc", f))
				os.WriteFile(filepath.Join(dir, f), b, 0o644)
			}
			os.WriteFile(filepath.Join(dir, tt.file), []byte(tt.content), 0o644)
			fakeSystem(t, dir)
			_, err := (&LocalNode{}).Status(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestLocalNodePower(t *testing.T) {
	sigs := fakeSystem(t, "testdata/proc")
	n := &LocalNode{}
	for _, tt := range []struct {
		do   func(context.Context) error
		want unix.Signal
	}{{n.Reboot, unix.SIGINT}, {n.Shutdown, unix.SIGTERM}} {
		if err := tt.do(context.Background()); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-sigs:
			if got != tt.want {
				t.Errorf("PID 1 got %v, want %v", got, tt.want)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("PID 1 was not signalled")
		}
	}
	var rebooted []bool
	done := make(chan struct{})
	n.Power = func(reboot bool) error { rebooted = append(rebooted, reboot); close(done); return nil }
	n.Reboot(context.Background())
	<-done
	if len(rebooted) != 1 || !rebooted[0] {
		t.Errorf("Power calls = %v", rebooted)
	}
}
