package mountcmd

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseOptions(t *testing.T) {
	tests := []struct {
		in   string
		want Options
	}{
		{"", Options{}},
		{"size=65536k,mode=0755", Options{Data: "size=65536k,mode=0755"}},
		{"ro,nosuid,nodev", Options{Flags: unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV}},
		{"ro,rw", Options{}},
		{"bind,remount,ro", Options{Flags: unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY}},
		{"rbind,rprivate", Options{Flags: unix.MS_BIND | unix.MS_REC, Propagation: unix.MS_PRIVATE | unix.MS_REC}},
		{"defaults,,noexec", Options{Flags: unix.MS_NOEXEC}},
	}
	for _, tt := range tests {
		if got := ParseOptions(tt.in); got != tt.want {
			t.Errorf("ParseOptions(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

// call is one mount(2) or umount(2) the commands made.
func record(t *testing.T) *[]string {
	var calls []string
	oldM, oldU := sysMount, sysUnmount
	t.Cleanup(func() { sysMount, sysUnmount = oldM, oldU })
	sysMount = func(source, target, fstype string, flags uintptr, data string) error {
		calls = append(calls, fmt.Sprintf("mount %q %q %q %#x %q", source, target, fstype, flags, data))
		return nil
	}
	sysUnmount = func(target string, flags int) error {
		calls = append(calls, fmt.Sprintf("umount %q %#x", target, flags))
		if target == "/not-a-mount" {
			return unix.EINVAL
		}
		return nil
	}
	return &calls
}

func TestMount(t *testing.T) {
	tests := []struct {
		args   string
		status int
		calls  []string
		stderr string
	}{
		{"mount -t tmpfs -o size=1g tmpfs /v", 0, []string{`mount "tmpfs" "/v" "tmpfs" 0x0 "size=1g"`}, ""},
		{"mount --no-canonicalize -o bind,ro /a /b", 0, []string{
			`mount "/a" "/b" "" 0x1000 ""`, fmt.Sprintf(`mount "" "/b" "" %#x ""`, unix.MS_RDONLY|unix.MS_BIND|unix.MS_REMOUNT)}, ""},
		{"mount -o rshared /a /a", 0, []string{fmt.Sprintf(`mount "" "/a" "" %#x ""`, unix.MS_SHARED|unix.MS_REC)}, ""},
		{"mount /a", 1, nil, "usage"},
		{"mount -x /a /b", 1, nil, "option -x is not supported"},
	}
	for _, tt := range tests {
		calls := record(t)
		var stderr bytes.Buffer
		status := Mount(strings.Fields(tt.args), &stderr)
		if status != tt.status || strings.Join(*calls, "\n") != strings.Join(tt.calls, "\n") || !strings.Contains(stderr.String(), tt.stderr) {
			t.Errorf("%s: status %d, calls %q, stderr %q; want %d, %q, %q", tt.args, status, *calls, stderr.String(), tt.status, tt.calls, tt.stderr)
		}
	}
}

func TestUmount(t *testing.T) {
	calls := record(t)
	var stderr bytes.Buffer
	if s := Umount([]string{"umount", "-l", "/a"}, &stderr); s != 0 || (*calls)[0] != fmt.Sprintf(`umount "/a" %#x`, unix.MNT_DETACH) {
		t.Errorf("status %d, calls %q", s, *calls)
	}
	if s := Umount([]string{"umount", "/not-a-mount"}, &stderr); s != 32 || !strings.Contains(stderr.String(), "not mounted") {
		t.Errorf("not a mount point: status %d, stderr %q (the kubelet looks for \"not mounted\")", s, stderr.String())
	}
}

// TestRealTmpfs mounts and unmounts a tmpfs through the commands (root).
func TestRealTmpfs(t *testing.T) {
	if unix.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := t.TempDir()
	var stderr bytes.Buffer
	if s := Mount([]string{"mount", "-t", "tmpfs", "-o", "size=1m,mode=0700,nosuid", "tmpfs", dir}, &stderr); s != 0 {
		t.Fatalf("mount: %d %s", s, stderr.String())
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil || st.Type != unix.TMPFS_MAGIC {
		t.Errorf("%s is not a tmpfs after mount (%v)", dir, err)
	}
	if s := Umount([]string{"umount", dir}, &stderr); s != 0 {
		t.Fatalf("umount: %d %s", s, stderr.String())
	}
	if s := Umount([]string{"umount", dir}, &stderr); s != 32 || !strings.Contains(stderr.String(), "not mounted") {
		t.Errorf("second umount: %d %q", s, stderr.String())
	}
}
