package datafs

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// superblockBytes returns a partition head with an ext4 superblock.
func superblockBytes(blocksLo, blocksHi uint32, logBS uint32, incompat uint32, label string) []byte {
	b := make([]byte, 4096)
	sb := b[1024:]
	le := binary.LittleEndian
	le.PutUint32(sb[0x4:], blocksLo)
	le.PutUint32(sb[0x18:], logBS)
	le.PutUint16(sb[0x38:], 0xEF53)
	le.PutUint32(sb[0x60:], incompat)
	le.PutUint32(sb[0x150:], blocksHi)
	copy(sb[0x78:0x88], label)
	return b
}

func TestParseSuperblock(t *testing.T) {
	for _, tt := range []struct {
		name    string
		in      []byte
		want    Superblock
		wantErr string
	}{
		{name: "4k blocks", in: superblockBytes(524288, 0, 2, 0, "CAIRN-DATA"), want: Superblock{Blocks: 524288, BlockSize: 4096, Label: "CAIRN-DATA"}},
		{name: "64bit uses hi", in: superblockBytes(1, 2, 2, incompat64, ""), want: Superblock{Blocks: 2<<32 | 1, BlockSize: 4096}},
		{name: "hi ignored without 64bit", in: superblockBytes(1, 2, 0, 0, ""), want: Superblock{Blocks: 1, BlockSize: 1024}},
		{name: "zeros", in: make([]byte, 4096), wantErr: "magic"},
		{name: "short", in: make([]byte, 100), wantErr: "need"},
		{name: "absurd block size", in: superblockBytes(1, 0, 30, 0, ""), wantErr: "block size"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSuperblock(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ParseSuperblock() = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	junk := make([]byte, 8192)
	junk[5000] = 1
	for _, tt := range []struct {
		name string
		in   []byte
		want Kind
	}{
		{name: "zeros", in: make([]byte, 8192), want: Blank},
		{name: "ext4", in: superblockBytes(8, 0, 2, 0, ""), want: Ext4},
		{name: "one stray byte", in: junk, want: Unknown},
	} {
		if got := Classify(tt.in); got != tt.want {
			t.Errorf("%s: Classify() = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestGrowPlan(t *testing.T) {
	sb := Superblock{Blocks: 1000, BlockSize: 4096}
	for _, tt := range []struct {
		part   uint64
		want   uint64
		wantOK bool
	}{
		{part: 1000 * 4096, wantOK: false},
		{part: 1000*4096 + 4095, wantOK: false},
		{part: 1100 * 4096, wantOK: false}, // under a MiB more
		{part: 2000*4096 + 100, want: 2000, wantOK: true},
		{part: 10, wantOK: false},
	} {
		got, ok := GrowPlan(sb, tt.part)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("GrowPlan(%d) = %d, %v; want %d, %v", tt.part, got, ok, tt.want, tt.wantOK)
		}
	}
}

// TestFormat makes a filesystem on an image file and, where e2fsprogs is
// installed, has e2fsck check it.
func TestFormat(t *testing.T) {
	img := filepath.Join(t.TempDir(), "data.img")
	const size = 64 << 20
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	if k, err := Probe(img); err != nil || k != Blank {
		t.Fatalf("Probe(blank) = %v, %v", k, err)
	}
	if err := Format(img, size); err != nil {
		t.Fatal(err)
	}
	if k, err := Probe(img); err != nil || k != Ext4 {
		t.Fatalf("Probe(formatted) = %v, %v", k, err)
	}
	sb, err := ReadSuperblock(img)
	if err != nil {
		t.Fatal(err)
	}
	if sb.Label != Label || sb.BlockSize != 4096 || sb.Size() > size || sb.Size() < size-(1<<20) {
		t.Errorf("superblock %+v, want label %s, 4 KiB blocks and about %d bytes", sb, Label, size)
	}
	if err := Format(img, size); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Errorf("second Format() = %v, want a refusal", err)
	}
	if fsck, err := exec.LookPath("e2fsck"); err == nil {
		if out, err := exec.Command(fsck, "-fn", img).CombinedOutput(); err != nil {
			t.Errorf("e2fsck -fn: %v\n%s", err, out)
		}
	}
}

func TestGrowOnline(t *testing.T) {
	img := filepath.Join(t.TempDir(), "data.img")
	if err := os.WriteFile(img, superblockBytes(1000, 0, 2, 0, Label), 0o644); err != nil {
		t.Fatal(err)
	}
	var got uint64
	old := resizeFS
	t.Cleanup(func() { resizeFS = old })
	resizeFS = func(_ string, blocks uint64) error { got = blocks; return nil }
	o, n, grown, err := GrowOnline(img, "/var", 8000*4096)
	if err != nil || !grown || o != 1000*4096 || n != 8000*4096 || got != 8000 {
		t.Errorf("GrowOnline() = %d, %d, %v, %v (ioctl %d); want grown to 8000 blocks", o, n, grown, err, got)
	}
}

func FuzzParseSuperblock(f *testing.F) {
	f.Add(superblockBytes(524288, 0, 2, incompat64, "x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		sb, err := ParseSuperblock(b)
		if err == nil && (sb.BlockSize < 1024 || sb.BlockSize > 64<<10) {
			t.Fatalf("block size %d accepted", sb.BlockSize)
		}
		_ = Classify(b)
	})
}
