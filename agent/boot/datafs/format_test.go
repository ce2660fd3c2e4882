package datafs

import (
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/agent/boot/datafs/datafstest"
	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/ext4"
)

func TestPlan(t *testing.T) {
	for _, tt := range []struct {
		name    string
		size    int64
		want    geometry
		wantErr string
	}{
		{name: "one group", size: 64 << 20, want: geometry{blocks: 16384, inodesPerGroup: 8192}},
		{name: "whole groups", size: 1 << 30, want: geometry{blocks: 262144, inodesPerGroup: 16384}},
		// go-diskfs would make 11608 inodes a group: 725.5 table blocks.
		{name: "inodes rounded to table blocks", size: 272 << 20, want: geometry{blocks: 69632, inodesPerGroup: 11616}},
		{name: "1 MiB tail dropped", size: 257 << 20, want: geometry{blocks: 65536, inodesPerGroup: 16384}},
		{name: "one-block tail dropped", size: 128<<20 + 4096, want: geometry{blocks: 32768, inodesPerGroup: 16384}},
		{name: "8 MiB tail kept", size: 136 << 20, want: geometry{blocks: 34816, inodesPerGroup: 8704}},
		{name: "partial block ignored", size: 64<<20 + 4095, want: geometry{blocks: 16384, inodesPerGroup: 8192}},
		{name: "too small", size: 8 << 20, wantErr: "too small"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := plan(tt.size)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("plan(%d) error = %v, want %q", tt.size, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("plan(%d) = %+v, %v; want %+v", tt.size, got, err, tt.want)
			}
			if got.inodesPerGroup%inodesPerBlock != 0 {
				t.Errorf("%d inodes per group are not whole table blocks", got.inodesPerGroup)
			}
		})
	}
}

// TestFormatJudged formats sparse files of several sizes and has e2fsck,
// dumpe2fs and the kernel (a loop mount, a write, ext4lazyinit's pass over
// every group) judge the result, which must pass without a word.
func TestFormatJudged(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		size int64
	}{
		{"64MiB", 64 << 20},
		{"272MiB", 272 << 20},           // go-diskfs's own inode count fills 725.5 table blocks a group
		{"128MiB+4KiB", 128<<20 + 4096}, // a last group of one block
		{"1GiB", 1 << 30},
		{"20GiB", 20 << 30},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			img := sparseFile(t, tt.size)
			if k, err := Probe(img); err != nil || k != Blank {
				t.Fatalf("Probe(blank) = %v, %v", k, err)
			}
			if err := Format(img, tt.size); err != nil {
				t.Fatal(err)
			}
			if k, err := Probe(img); err != nil || k != Ext4 {
				t.Fatalf("Probe(formatted) = %v, %v", k, err)
			}
			sb, err := ReadSuperblock(img)
			if err != nil {
				t.Fatal(err)
			}
			if sb.Label != Label || sb.BlockSize != 4096 || sb.Size() > uint64(tt.size) || sb.Size()+minTailBlocks*blockSize < uint64(tt.size) {
				t.Errorf("superblock %+v, want label %s, 4 KiB blocks and about %d bytes", sb, Label, tt.size)
			}
			if err := Format(img, tt.size); err == nil || !strings.Contains(err.Error(), "refusing") {
				t.Errorf("second Format() = %v, want a refusal", err)
			}
			checkClean(t, img)
			mountCheck(t, img, waitLazyInit)
			checkClean(t, img)
		})
	}
}

func TestMountData(t *testing.T) {
	for _, tt := range []struct {
		name string
		sb   Superblock
		want string
	}{
		{"whole table blocks", Superblock{BlockSize: 4096, InodesPerGroup: 16384, InodeSize: 256}, "errors=remount-ro"},
		{"half a table block", Superblock{BlockSize: 4096, InodesPerGroup: 16376, InodeSize: 256}, "errors=remount-ro,noinit_itable"},
		{"no inode size", Superblock{BlockSize: 4096, InodesPerGroup: 16376}, "errors=remount-ro"},
	} {
		if got := MountData(tt.sb); got != tt.want {
			t.Errorf("%s: MountData() = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestMountOlderFormat mounts an ext4 as Cairn made it before Format
// rounded inodes per group to whole table blocks (go-diskfs's own count,
// 11,608 a group at 272 MiB): with MountData's options the kernel must say
// nothing while ext4lazyinit starts (up to 5 s after the mount).
func TestMountOlderFormat(t *testing.T) {
	t.Parallel()
	const size = 272 << 20
	img := sparseFile(t, size)
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ext4.Create(file.New(f, false), size, 0, 512, &ext4.Params{
		VolumeName:      Label,
		SectorsPerBlock: 8,
		Features:        []ext4.FeatureOpt{ext4.WithFeatureReservedGDTBlocksForExpansion(false)},
	})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	mountCheck(t, img, func(*testing.T, string) { time.Sleep(7 * time.Second) })
}

// TestFormatLeavesForeignData offers Format partitions that hold data
// Cairn did not write: it must refuse each and change no byte.
func TestFormatLeavesForeignData(t *testing.T) {
	const size = 32 << 20
	mkfs := func(t *testing.T, img string) {
		datafstest.Require(t) // mkfs.ext4 is e2fsprogs' too
		out, err := exec.Command("mkfs.ext4", "-q", "-F", img).CombinedOutput()
		if err != nil {
			t.Fatalf("mkfs.ext4: %v\n%s", err, out)
		}
	}
	at := func(off int64, b []byte) func(*testing.T, string) {
		return func(t *testing.T, img string) {
			f, err := os.OpenFile(img, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(b, off); err != nil {
				t.Fatal(err)
			}
		}
	}
	foreignMarker := marker
	foreignMarker[100] = '#'
	for _, tt := range []struct {
		name string
		fill func(*testing.T, string)
	}{
		{"one byte deep in", at(5000, []byte{1})},
		{"a byte at the end of the probe", at(ProbeSize-1, []byte{0xff})},
		{"XFS magic", at(0, []byte("XFSB"))},
		{"LUKS header", at(0, []byte("LUKS\xba\xbe\x00\x02"))},
		{"the marker with one foreign byte", at(0, foreignMarker[:])},
		{"the marker and a byte in sector 1", func(t *testing.T, img string) {
			at(0, marker[:])(t, img)
			at(700, []byte{7})(t, img)
		}},
		{"an ext4 made by mkfs.ext4", mkfs},
		{"an ext4 made by Format", func(t *testing.T, img string) {
			if err := Format(img, size); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			img := sparseFile(t, size)
			tt.fill(t, img)
			before := fileSum(t, img)
			k, err := Probe(img)
			if err != nil || k == Blank || k == Unfinished {
				t.Errorf("Probe() = %v, %v; want ext4 or unknown", k, err)
			}
			if err := Format(img, size); err == nil || !strings.Contains(err.Error(), "refusing") {
				t.Errorf("Format() = %v, want a refusal", err)
			}
			if fileSum(t, img) != before {
				t.Error("Format changed the partition")
			}
		})
	}
}

// fileSum returns the SHA-256 of a file's contents.
func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}
