package flash

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseMountInfo(t *testing.T) {
	info := `22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw
25 22 259:1 / /boot/efi rw,relatime shared:5 - vfat /dev/nvme0n1p1 rw,fmask=0077
40 22 8:17 / /media/my\040card rw,nosuid - vfat /dev/sdb1 rw
41 22 0:45 / /proc rw - proc proc rw
broken line
`
	got := parseMountInfo([]byte(info))
	if len(got) != 4 {
		t.Fatalf("parsed %d mounts, want 4: %+v", len(got), got)
	}
	if m := got[2]; m.dev != unix.Mkdev(8, 17) || m.point != "/media/my card" || m.source != "/dev/sdb1" {
		t.Errorf("mount 3 = %+v", m)
	}
}

func TestCheckInUse(t *testing.T) {
	sdb := block{name: "sdb", dev: unix.Mkdev(8, 16), parts: []block{
		{name: "sdb1", dev: unix.Mkdev(8, 17)}, {name: "sdb2", dev: unix.Mkdev(8, 18)},
	}}
	held := sdb
	held.parts = []block{{name: "sdb1", dev: unix.Mkdev(8, 17), holders: []string{"dm-0"}}}
	tests := []struct {
		name    string
		b       block
		mounts  []mount
		system  map[uint64]string
		wantErr string
	}{
		{"free", sdb, []mount{{dev: unix.Mkdev(8, 1), point: "/"}}, map[uint64]string{unix.Mkdev(8, 1): "/", unix.Mkdev(8, 0): "/"}, ""},
		{"partition mounted", sdb, []mount{{dev: unix.Mkdev(8, 18), point: "/media/card"}}, nil, "/dev/sdb2 is mounted on /media/card (unmount it first: umount /media/card)"},
		{"disk mounted", sdb, []mount{{dev: unix.Mkdev(8, 16), point: "/mnt"}}, nil, "/dev/sdb is mounted on /mnt"},
		{"held", held, nil, nil, "/dev/sdb1 is in use by dm-0"},
		{"root on a partition", sdb, nil, map[uint64]string{unix.Mkdev(8, 18): "/"}, "its partition sdb2 holds the running system's /"},
		{"root's disk", sdb, nil, map[uint64]string{unix.Mkdev(8, 16): "/boot"}, "it holds the running system's /boot"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkInUse(tc.b, tc.mounts, tc.system)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("checkInUse = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("checkInUse = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestSystemDisk: the disk this test runs from, whatever it is, is refused.
func TestSystemDisk(t *testing.T) {
	var st unix.Stat_t
	if err := unix.Stat("/", &st); err != nil {
		t.Fatal(err)
	}
	mounts := parseMountInfo(must(t, "/proc/self/mountinfo"))
	sys := systemDevs(mounts)
	if _, ok := sys[uint64(st.Dev)]; !ok {
		t.Errorf("systemDevs lacks /'s device %d:%d: %v", unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev)), sys)
	}
}

func TestBmapCandidates(t *testing.T) {
	for in, want := range map[string]string{
		"out/x.img":     "out/x.img.bmap out/x.bmap",
		"out/x.img.zst": "out/x.img.bmap out/x.bmap",
		"out/x.img.xz":  "out/x.img.bmap out/x.bmap",
		"card.raw":      "card.raw.bmap",
	} {
		if got := strings.Join(BmapCandidates(in), " "); got != want {
			t.Errorf("BmapCandidates(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestNodeFile(t *testing.T) {
	b, err := NodeFile(Node{Hostname: "edge-1", Interface: "eth0", Addresses: []string{"10.0.0.5/24"}, Gateway: "10.0.0.1", DNS: []string{"10.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"hostname: edge-1\n", "name: eth0", "- 10.0.0.5/24", "gateway: 10.0.0.1", "dns:"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("node file lacks %q:\n%s", want, b)
		}
	}
	for _, tc := range []struct {
		n       Node
		wantErr string
	}{
		{Node{Hostname: "bad_name"}, "hostname"},
		{Node{Interface: "eth0", Addresses: []string{"10.0.0.5"}}, "CIDR"},
		{Node{Addresses: []string{"10.0.0.5/24"}}, "--interface"},
		{Node{Interface: "eth0", Addresses: []string{"10.0.0.5/24"}, Gateway: "192.168.1.1"}, "outside the subnet"},
	} {
		if _, err := NodeFile(tc.n); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("NodeFile(%+v) = %v, want an error containing %q", tc.n, err, tc.wantErr)
		}
	}
	if err := CheckNodeFile([]byte("hostnme: x\n")); err == nil {
		t.Error("CheckNodeFile accepted an unknown key")
	}
}

func must(t *testing.T, path string) []byte {
	t.Helper()
	b, err := readLimited(path, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
