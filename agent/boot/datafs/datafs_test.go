package datafs

import (
	"encoding/binary"
	"os"
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

// withGeometry sets a dynamic revision's geometry fields in a head from
// superblockBytes.
func withGeometry(b []byte, blocksPerGroup, inodesPerGroup uint32, inodeSize uint16) []byte {
	sb := b[1024:]
	le := binary.LittleEndian
	le.PutUint32(sb[0x20:], blocksPerGroup)
	le.PutUint32(sb[0x28:], inodesPerGroup)
	le.PutUint32(sb[0x4C:], 1)
	le.PutUint16(sb[0x58:], inodeSize)
	return b
}

func TestParseSuperblock(t *testing.T) {
	for _, tt := range []struct {
		name    string
		in      []byte
		want    Superblock
		wantErr string
	}{
		{name: "4k blocks", in: superblockBytes(524288, 0, 2, 0, "CAIRN-DATA"), want: Superblock{Blocks: 524288, BlockSize: 4096, InodeSize: 128, Label: "CAIRN-DATA"}},
		{name: "64bit uses hi", in: superblockBytes(1, 2, 2, incompat64, ""), want: Superblock{Blocks: 2<<32 | 1, BlockSize: 4096, InodeSize: 128}},
		{name: "hi ignored without 64bit", in: superblockBytes(1, 2, 0, 0, ""), want: Superblock{Blocks: 1, BlockSize: 1024, InodeSize: 128}},
		{name: "dynamic revision geometry", in: withGeometry(superblockBytes(65536, 0, 2, 0, ""), 32768, 16384, 256), want: Superblock{Blocks: 65536, BlockSize: 4096, BlocksPerGroup: 32768, InodesPerGroup: 16384, InodeSize: 256}},
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

// head returns a partition head of zeros, or of a superblock with sb,
// edited by each of edits.
func head(sb bool, edits ...func([]byte)) []byte {
	b := make([]byte, 8192)
	if sb {
		copy(b, superblockBytes(8, 0, 2, 0, ""))
	}
	for _, e := range edits {
		e(b)
	}
	return b
}

// markerBytes copies the marker's bytes [from, to) into a head.
func markerBytes(from, to int) func([]byte) {
	return func(b []byte) { copy(b[from:to], marker[from:to]) }
}

// setByte sets one byte of a head.
func setByte(i int, c byte) func([]byte) { return func(b []byte) { b[i] = c } }

func TestClassify(t *testing.T) {
	all := markerBytes(0, len(marker))
	for _, tt := range []struct {
		name string
		in   []byte
		want Kind
	}{
		{name: "zeros", in: head(false), want: Blank},
		{name: "ext4", in: head(true), want: Ext4},
		{name: "one stray byte", in: head(false, setByte(5000, 1)), want: Unknown},
		{name: "marker only", in: head(false, all), want: Unfinished},
		{name: "marker over an ext4", in: head(true, all), want: Unfinished},
		{name: "marker torn while written", in: head(false, markerBytes(0, 100)), want: Unfinished},
		{name: "marker's last byte", in: head(false, markerBytes(511, 512)), want: Unfinished},
		{name: "marker torn while zeroed", in: head(true, markerBytes(300, 512)), want: Unfinished},
		{name: "marker with a foreign byte", in: head(false, all, setByte(7, '#')), want: Unknown},
		{name: "ext4 with a foreign boot sector", in: head(true, all, setByte(7, '#')), want: Ext4},
		{name: "marker and data in sector 1", in: head(false, all, setByte(600, 1)), want: Unknown},
		{name: "foreign text in sector 0", in: head(false, func(b []byte) { copy(b, "XFSB") }), want: Unknown},
	} {
		if got := Classify(tt.in); got != tt.want {
			t.Errorf("%s: Classify() = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestGrowPlan(t *testing.T) {
	small := Superblock{Blocks: 1000, BlockSize: 4096}
	// A tail too short for a block group is left out, as the kernel would.
	group := Superblock{Blocks: 32768, BlockSize: 4096, BlocksPerGroup: 32768}
	for _, tt := range []struct {
		sb     Superblock
		part   uint64
		want   uint64
		wantOK bool
	}{
		{sb: small, part: 1000 * 4096, wantOK: false},
		{sb: small, part: 1000*4096 + 4095, wantOK: false},
		{sb: small, part: 1100 * 4096, wantOK: false}, // under a MiB more
		{sb: small, part: 2000*4096 + 100, want: 2000, wantOK: true},
		{sb: small, part: 10, wantOK: false},
		{sb: group, part: (32768 + 1) * 4096, wantOK: false},
		{sb: group, part: (32768 + 2047) * 4096, wantOK: false},
		{sb: group, part: (32768 + 2048) * 4096, want: 32768 + 2048, wantOK: true},
		{sb: group, part: (3*32768 + 5) * 4096, want: 3 * 32768, wantOK: true},
	} {
		got, ok := GrowPlan(tt.sb, tt.part)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("GrowPlan(%+v, %d) = %d, %v; want %d, %v", tt.sb, tt.part, got, ok, tt.want, tt.wantOK)
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
