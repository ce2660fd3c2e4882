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
