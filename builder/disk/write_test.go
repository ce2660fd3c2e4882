package disk

import (
	"bytes"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/agent/boot/datafs"
	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/builder/bmap"
)

// oldCard is what a reused card holds where the image writes nothing.
var oldCard = []byte("an older card's file systems. ")

// TestWriteWipes: on every layout the space before the first partition
// and the first WipeSize bytes of each partition are in the image's block
// map. A card that held something else, written through the map as cairn
// flash and bmaptool write it, then holds the image's bytes there: zeros
// at the start of slot B and of CAIRN-DATA, which cairn-init (datafs)
// takes for blank and formats, slot A's image followed by zeros, the FAT
// partitions' file systems without old bytes between their structures.
// The same inputs give the same image.
func TestWriteWipes(t *testing.T) {
	if WipeSize < datafs.ProbeSize {
		t.Fatalf("WipeSize %d is less than the %d bytes cairn-init probes CAIRN-DATA for", WipeSize, datafs.ProbeSize)
	}
	sizes := Sizes{ESP: 40 << 20, Slot: 8 << 20, Data: 8 << 20}
	slot := filepath.Join(t.TempDir(), "slot.img")
	slotData := bytes.Repeat([]byte("hsqs slot a "), 30000) // 360,000 bytes: less than WipeSize
	if err := os.WriteFile(slot, slotData, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		plan func(arch, seed string, s Sizes) (Layout, error)
	}{
		{"uefi", Plan},
		{"rpi", PlanRPi},
		{"extlinux", PlanExtlinux},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := tc.plan("arm64", "wipe-"+tc.name, sizes)
			if err != nil {
				t.Fatal(err)
			}
			c := Contents{Slots: map[contract.Slot]string{contract.SlotA: slot}, Epoch: time.Unix(1e9, 0)}
			img, sum := writeImage(t, l, c)
			if _, again := writeImage(t, l, c); again != sum {
				t.Error("two writes of the same layout and contents differ")
			}
			m, err := bmap.Scan(img)
			if err != nil {
				t.Fatal(err)
			}
			wiped := l.Wiped()
			if len(wiped) != len(l.Partitions)+1 || wiped[0] != (Extent{0, l.Partitions[0].Start}) {
				t.Fatalf("Wiped = %v: want the space before partition 1, then one range per partition", wiped)
			}
			for i, e := range wiped {
				name := "the space before partition 1"
				if i > 0 {
					p := l.Partitions[i-1]
					name = p.Label
					if e != (Extent{p.Start, min(WipeSize, p.Size)}) {
						t.Errorf("%s: wiped %+v, want its first %d bytes", name, e, WipeSize)
					}
				}
				card := flashed(t, img, m, e)
				want := make([]byte, e.Len)
				if _, err := img.ReadAt(want, e.Off); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(card, want) {
					t.Errorf("%s: flashed through the block map onto a reused card, its first %d bytes are not the image's: the old card's show through", name, e.Len)
				}
				switch name {
				case LabelData:
					if k := datafs.Classify(card[:datafs.ProbeSize]); k != datafs.Blank {
						t.Errorf("%s on a reused card is %s to cairn-init, want %s", name, k, datafs.Blank)
					}
				case LabelB:
					if !bytes.Equal(card, make([]byte, len(card))) {
						t.Errorf("%s on a reused card does not start with %d bytes of zeros", name, len(card))
					}
				case LabelA:
					if !bytes.HasPrefix(card, slotData) || !bytes.Equal(card[len(slotData):], make([]byte, len(card)-len(slotData))) {
						t.Errorf("%s on a reused card is not the slot's image, then zeros", name)
					}
				}
			}
		})
	}
}

// writeImage writes l with c into a new file and returns it, open, and
// its SHA-256.
func writeImage(t *testing.T, l Layout, c Contents) (*os.File, [sha256.Size]byte) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "disk.img"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := Write(f, l, c); err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, l.Size)); err != nil {
		t.Fatal(err)
	}
	return f, [sha256.Size]byte(h.Sum(nil))
}

// flashed is what a card that held oldCard everywhere holds in e after
// the mapped blocks of img were written onto it, as cairn flash writes
// them.
func flashed(t *testing.T, img *os.File, m bmap.Map, e Extent) []byte {
	t.Helper()
	card := bytes.Repeat(oldCard, int(e.Len)/len(oldCard)+1)[:e.Len]
	for _, r := range m.Ranges {
		off, n := m.Extent(r)
		lo, hi := max(off, e.Off), min(off+n, e.Off+e.Len)
		if lo >= hi {
			continue
		}
		if _, err := img.ReadAt(card[lo-e.Off:hi-e.Off], lo); err != nil {
			t.Fatal(err)
		}
	}
	return card
}
