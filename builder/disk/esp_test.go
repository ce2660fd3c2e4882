package disk

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/builder/fstree"
	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/partition/gpt"
)

// testDisk writes a small Cairn disk (an ESP with one file, empty slots)
// and returns its path.
func testDisk(t *testing.T) string {
	t.Helper()
	l, err := Plan("amd64", "esp-test", Sizes{ESP: 40 << 20, Slot: 8 << 20, Data: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	tree := fstree.New()
	if err := tree.File("loader/loader.conf", 0o644, []byte("timeout 0\n")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := Write(f, l, Contents{FAT: map[string]*fstree.Tree{LabelESP: tree}, Epoch: time.Unix(1e9, 0)}); err != nil {
		t.Fatal(err)
	}
	return path
}

func openESP(t *testing.T, path string) (*ESP, *os.File) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	e, err := OpenESP(f)
	if err != nil {
		t.Fatal(err)
	}
	return e, f
}

// TestESPFiles writes, reads back and replaces per-node files, and leaves
// a FAT that fsck.vfat finds nothing wrong with.
func TestESPFiles(t *testing.T) {
	path := testDisk(t)
	e, _ := openESP(t, path)
	if _, err := e.ReadFile("cairn-node.crt"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadFile of a missing file: err = %v, want fs.ErrNotExist", err)
	}
	long := bytes.Repeat([]byte("0123456789abcdef"), 1000) // spans clusters
	for _, w := range []struct{ name, data string }{
		{"cairn-node.crt", "first"},
		{"cairn-node.key", string(long)},
		{"cairn-node.crt", "second, longer than the first"},
		{"cairn-node.key", "short now"},
	} {
		if err := e.WriteFile(w.name, []byte(w.data)); err != nil {
			t.Fatalf("WriteFile(%s): %v", w.name, err)
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e, _ = openESP(t, path) // read back from the disk, not from memory
	for name, want := range map[string]string{"cairn-node.crt": "second, longer than the first", "cairn-node.key": "short now", "loader/loader.conf": ""} {
		got, err := e.ReadFile(name)
		if name == "loader/loader.conf" {
			if err == nil || !strings.Contains(err.Error(), "not a file name in the ESP's root") {
				t.Errorf("ReadFile(%s): err = %v, want a refusal of the path", name, err)
			}
			continue
		}
		if err != nil || string(got) != want {
			t.Errorf("ReadFile(%s) = %q, %v; want %q", name, got, err, want)
		}
	}
	if _, err := exec.LookPath("fsck.vfat"); err != nil {
		t.Log("no fsck.vfat (apt-get install dosfstools): the FAT is not checked")
		return
	}
	esp := filepath.Join(t.TempDir(), "esp.fat")
	img, _ := os.ReadFile(path)
	os.WriteFile(esp, img[1<<20:41<<20], 0o644)
	if out, err := exec.Command("fsck.vfat", "-n", esp).CombinedOutput(); err != nil || strings.Contains(string(out), "\n  ") {
		t.Errorf("fsck.vfat -n: %v\n%s", err, out)
	}
}

// TestOpenESPRefuses: a file or disk that is not Cairn's is never written.
func TestOpenESPRefuses(t *testing.T) {
	dir := t.TempDir()
	zeros := filepath.Join(dir, "zeros.img")
	os.WriteFile(zeros, make([]byte, 4<<20), 0o644)
	other := filepath.Join(dir, "other.img")
	f, _ := os.Create(other)
	f.Truncate(64 << 20)
	d, err := diskfs.OpenBackend(file.New(f, false))
	if err != nil {
		t.Fatal(err)
	}
	table := &gpt.Table{LogicalSectorSize: 512, PhysicalSectorSize: 512, ProtectiveMBR: true, Partitions: []*gpt.Partition{
		{Index: 1, Start: 2048, End: 2048 + 40<<11 - 1, Type: gpt.EFISystemPartition, Name: "EFI system partition"},
		{Index: 2, Start: 2048 + 40<<11, End: 2048 + 50<<11 - 1, Type: gpt.LinuxFilesystem, Name: "home"},
	}}
	if err := d.Partition(table); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, tt := range []struct{ name, path, want string }{
		{"zeros", zeros, "no partition table"},
		{"another OS's disk", other, "is not a Cairn disk"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := os.ReadFile(tt.path)
			f, err := os.OpenFile(tt.path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := OpenESP(f); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("OpenESP: err = %v, want one containing %q", err, tt.want)
			}
			if after, _ := os.ReadFile(tt.path); !bytes.Equal(before, after) {
				t.Error("the disk changed")
			}
		})
	}
}
