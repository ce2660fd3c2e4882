package blockdev

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseUevent(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want map[string]string
	}{
		{
			in:   "MAJOR=254\nMINOR=4\nDEVNAME=vda4\nDEVTYPE=partition\nDISKSEQ=9\nPARTN=4\nPARTNAME=CAIRN-DATA\n",
			want: map[string]string{"MAJOR": "254", "MINOR": "4", "DEVNAME": "vda4", "DEVTYPE": "partition", "DISKSEQ": "9", "PARTN": "4", "PARTNAME": "CAIRN-DATA"},
		},
		{in: "PARTNAME=a=b\nnoequals\n=x\n", want: map[string]string{"PARTNAME": "a=b"}},
		{in: "", want: map[string]string{}},
	} {
		if got := ParseUevent([]byte(tt.in)); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseUevent(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// fakeSys builds /sys/devices/.../<disk>/<part> with /sys/class/block
// symlinks, like the kernel does.
func fakeSys(t *testing.T, disk string, parts map[string]string) {
	t.Helper()
	root := t.TempDir()
	devs := filepath.Join(root, "devices", "virtio0", "block", disk)
	class := filepath.Join(root, "class", "block")
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(devs, "uevent"), "MAJOR=254\nDEVNAME="+disk+"\nDEVTYPE=disk\n")
	if err := os.MkdirAll(class, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(devs, filepath.Join(class, disk)); err != nil {
		t.Fatal(err)
	}
	i := 0
	for name, label := range parts {
		i++
		write(filepath.Join(devs, name, "uevent"), "DEVNAME="+name+"\nDEVTYPE=partition\nPARTN="+name[len(name)-1:]+"\nPARTNAME="+label+"\n")
		write(filepath.Join(devs, name, "size"), "4096\n")
		if err := os.Symlink(filepath.Join(devs, name), filepath.Join(class, name)); err != nil {
			t.Fatal(err)
		}
	}
	oldSys, oldDev := SysClassBlock, DevDir
	SysClassBlock, DevDir = class, "/dev"
	t.Cleanup(func() { SysClassBlock, DevDir = oldSys, oldDev })
}

func TestFindPartition(t *testing.T) {
	fakeSys(t, "vda", map[string]string{"vda1": "ESP", "vda2": "CAIRN-A", "vda3": "CAIRN-B", "vda4": "CAIRN-DATA"})
	got, err := FindPartition("CAIRN-DATA")
	if err != nil {
		t.Fatal(err)
	}
	want := Partition{Label: "CAIRN-DATA", Name: "vda4", Path: "/dev/vda4", Disk: "/dev/vda", Number: 4}
	if got != want {
		t.Errorf("FindPartition() = %+v, want %+v", got, want)
	}
	if n, err := SizeBytes("vda4"); err != nil || n != 4096*512 {
		t.Errorf("SizeBytes(vda4) = %d, %v; want %d", n, err, 4096*512)
	}
	if _, err := FindPartition("CAIRN-C"); err == nil || !strings.Contains(err.Error(), "no partition is labeled CAIRN-C") {
		t.Errorf("FindPartition(CAIRN-C) error = %v, want not found", err)
	}
}

func TestFindPartitionDuplicate(t *testing.T) {
	fakeSys(t, "vda", map[string]string{"vda2": "CAIRN-A", "vda3": "CAIRN-A"})
	if _, err := FindPartition("CAIRN-A"); err == nil || !strings.Contains(err.Error(), "2 partitions are labeled CAIRN-A") {
		t.Errorf("FindPartition() error = %v, want duplicate label error", err)
	}
}

func TestWaitPartitionTimeout(t *testing.T) {
	fakeSys(t, "vda", map[string]string{"vda1": "ESP"})
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	_, err := WaitPartition(ctx, "CAIRN-A")
	if err == nil || !strings.Contains(err.Error(), "deadline exceeded") {
		t.Errorf("WaitPartition() error = %v, want a timeout", err)
	}
}

func FuzzParseUevent(f *testing.F) {
	f.Add([]byte("DEVNAME=vda4\nPARTNAME=CAIRN-DATA\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for k := range ParseUevent(b) {
			if k == "" || strings.Contains(k, "\n") {
				t.Fatalf("bad key %q", k)
			}
		}
	})
}
