package gptgrow

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/partition/gpt"
)

const mib = 2048 // sectors of 512 bytes

func layout(diskMiB uint64, parts ...Part) Layout {
	return Layout{SectorSize: 512, DiskSectors: diskMiB * mib, EntryCount: 128, EntrySize: 128, Parts: parts}
}

func TestPlan(t *testing.T) {
	esp := Part{Index: 1, Name: "ESP", Start: mib, End: 65*mib - 1}
	a := Part{Index: 2, Name: "CAIRN-A", Start: 65 * mib, End: 129*mib - 1}
	data := func(endMiB uint64) Part {
		return Part{Index: 4, Name: "CAIRN-DATA", Start: 129 * mib, End: endMiB*mib - 1}
	}
	for _, tt := range []struct {
		name    string
		l       Layout
		want    Change
		wantOK  bool
		wantErr string
	}{
		{
			name:   "fresh image on a bigger disk",
			l:      layout(2048, esp, a, data(200)),
			want:   Change{Index: 4, Start: 129 * mib, OldEnd: 200*mib - 1, NewEnd: 2047*mib - 1, LastUsable: 2048*mib - 34},
			wantOK: true,
		},
		{name: "already grown", l: layout(2048, esp, a, data(2047))},
		{name: "disk grew by less than a MiB", l: layout(2048, esp, a, Part{Index: 4, Name: "CAIRN-DATA", Start: 129 * mib, End: 2048*mib - 34})},
		{name: "image as large as the disk", l: layout(200, esp, a, data(199))},
		{name: "not last", l: layout(2048, esp, data(200), Part{Index: 5, Name: "X", Start: 200 * mib, End: 300 * mib}), wantErr: "not the last"},
		{name: "missing", l: layout(2048, esp, a), wantErr: "no partition is named CAIRN-DATA"},
		{name: "duplicate", l: layout(2048, esp, data(100), Part{Index: 5, Name: "CAIRN-DATA", Start: 1, End: 2}), wantErr: "two partitions"},
		{name: "tiny disk", l: layout(0, esp), wantErr: "too small"},
		{name: "4k sectors", l: Layout{SectorSize: 4096, DiskSectors: 1 << 20, EntryCount: 128, EntrySize: 128, Parts: []Part{{Index: 1, Name: "CAIRN-DATA", Start: 256, End: 1023}}},
			want: Change{Index: 1, Start: 256, OldEnd: 1023, NewEnd: 1<<20 - 256 - 1, LastUsable: 1<<20 - 6}, wantOK: true},
		{name: "odd sector size", l: Layout{SectorSize: 520, DiskSectors: 1 << 20}, wantErr: "not supported"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := Plan(tt.l, "CAIRN-DATA")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Plan() error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ok != tt.wantOK || got != tt.want {
				t.Errorf("Plan() = %+v, %v; want %+v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// TestGrow builds a 300 MiB image like the builder's, enlarges the file to
// 1 GiB and checks the rewritten table.
func TestGrow(t *testing.T) {
	img := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	const small = 300 << 20
	if err := f.Truncate(small); err != nil {
		t.Fatal(err)
	}
	linux := gpt.Type("0FC63DAF-8483-4772-8E79-3D69D8477DE4")
	orig := &gpt.Table{LogicalSectorSize: 512, PhysicalSectorSize: 512, ProtectiveMBR: true, GUID: "6A2B4F5E-1C2D-4E3F-8A9B-0C1D2E3F4A5B", Partitions: []*gpt.Partition{
		{Index: 1, Name: "ESP", Type: gpt.EFISystemPartition, Start: mib, End: 65*mib - 1, GUID: "11111111-1111-1111-1111-111111111111"},
		{Index: 2, Name: "CAIRN-A", Type: linux, Start: 65 * mib, End: 129*mib - 1, GUID: "22222222-2222-2222-2222-222222222222"},
		{Index: 3, Name: "CAIRN-B", Type: linux, Start: 129 * mib, End: 193*mib - 1, GUID: "33333333-3333-3333-3333-333333333333"},
		{Index: 4, Name: "CAIRN-DATA", Type: linux, Start: 193 * mib, End: 299*mib - 1, GUID: "44444444-4444-4444-4444-444444444444", Attributes: 1 << 60},
	}}
	if err := orig.Write(f, small); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()

	var gotPno int
	var gotStart, gotLen int64
	old := resizePartition
	t.Cleanup(func() { resizePartition = old })
	resizePartition = func(_ *os.File, pno int, start, length int64) error {
		gotPno, gotStart, gotLen = pno, start, length
		return nil
	}

	c, ok, err := Grow(img, "CAIRN-DATA")
	if err != nil || !ok {
		t.Fatalf("Grow() = %+v, %v, %v", c, ok, err)
	}
	if c.NewEnd != 1023*mib-1 {
		t.Errorf("NewEnd = %d, want %d", c.NewEnd, 1023*mib-1)
	}
	if gotPno != 4 || gotStart != 193<<20 || gotLen != (1023-193)<<20 {
		t.Errorf("BLKPG resize(pno %d, start %d, len %d), want (4, %d, %d)", gotPno, gotStart, gotLen, 193<<20, (1023-193)<<20)
	}

	f, err = os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := gpt.Read(file.New(f, true), 512, 512)
	if err != nil {
		t.Fatal(err)
	}
	if got.GUID != orig.GUID || got.RecoveredFromBackup {
		t.Errorf("disk GUID %s (recovered from backup %v), want %s from the primary", got.GUID, got.RecoveredFromBackup, orig.GUID)
	}
	for i, p := range got.Partitions {
		o := orig.Partitions[i]
		wantEnd := o.End
		if o.Index == 4 {
			wantEnd = c.NewEnd
		}
		if p.Name != o.Name || p.GUID != o.GUID || p.Type != o.Type || p.Start != o.Start || p.End != wantEnd || p.Attributes != o.Attributes {
			t.Errorf("partition %d = %+v, want %+v with end %d", p.Index, p, o, wantEnd)
		}
	}
	// The backup header now sits in the disk's last sector.
	hdr := make([]byte, 8)
	if _, err := f.ReadAt(hdr, 1<<30-512); err != nil || string(hdr) != "EFI PART" {
		t.Errorf("last sector holds %q, %v; want the backup GPT header", hdr, err)
	}

	if _, ok, err := Grow(img, "CAIRN-DATA"); ok || err != nil {
		t.Errorf("second Grow() = %v, %v; want nothing to do", ok, err)
	}
}
