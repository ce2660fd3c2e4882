package bmap

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestScan(t *testing.T) {
	img := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Truncate(64 * BlockSize)
	f.WriteAt([]byte("boot"), 0)                     // block 0
	f.WriteAt([]byte("x"), 5*BlockSize+10)           // block 5
	f.WriteAt([]byte("yy"), 6*BlockSize)             // block 6
	f.WriteAt(make([]byte, BlockSize), 20*BlockSize) // written zeros: mapped, they may matter
	f.WriteAt([]byte("end"), 64*BlockSize-3)         // last block
	m, err := Scan(f)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range m.Ranges {
		got = append(got, fmt.Sprintf("%d-%d", r.First, r.Last))
	}
	if want := "0-0 5-6 20-20 63-63"; strings.Join(got, " ") != want {
		t.Errorf("ranges = %v, want %s", got, want)
	}
	if m.Mapped() != 5 {
		t.Errorf("Mapped = %d, want 5", m.Mapped())
	}
	bm := filepath.Join(t.TempDir(), "disk.bmap")
	os.WriteFile(bm, m.Encode(), 0o644)
	// bmaptool is the independent check: it verifies the file checksum and
	// every range's checksum while copying.
	if tool, err := exec.LookPath("bmaptool"); err == nil {
		out := filepath.Join(t.TempDir(), "copy.img")
		if b, err := exec.Command(tool, "copy", "--bmap", bm, img, out).CombinedOutput(); err != nil {
			t.Fatalf("bmaptool copy: %v\n%s", err, b)
		}
	}
}

func TestCovers(t *testing.T) {
	// Blocks 2-4, 5-6 (adjacent: one run) and 10; the image ends in block 10.
	m := Map{ImageSize: 10*BlockSize + 100, Ranges: []Range{{First: 2, Last: 4}, {First: 5, Last: 6}, {First: 10, Last: 10}}}
	tests := []struct {
		name   string
		off, n int64
		want   bool
	}{
		{"inside one range", 2 * BlockSize, BlockSize, true},
		{"across adjacent ranges", 3*BlockSize + 1, 3 * BlockSize, true},
		{"a byte of a mapped block", 4*BlockSize + 4095, 1, true},
		{"the image's short last block", 10 * BlockSize, 100, true},
		{"nothing", 0, 0, true},
		{"before the first range", 0, 3 * BlockSize, false},
		{"running into a hole", 5 * BlockSize, 2*BlockSize + 1, false},
		{"a hole between ranges", 8 * BlockSize, 10, false},
		{"from a hole into a range", 9*BlockSize + 10, BlockSize, false},
		{"past the last range", 10 * BlockSize, BlockSize + 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := m.Covers(tc.off, tc.n); got != tc.want {
				t.Errorf("Covers(%d, %d) = %v, want %v", tc.off, tc.n, got, tc.want)
			}
		})
	}
}
