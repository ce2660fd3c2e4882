package disk

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/agent/boot/gptgrow"
	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/builder/fstree"
	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition/gpt"
)

var rpiSizes = Sizes{ESP: 64 << 20, Slot: 16 << 20, Data: 16 << 20}

// writeRPi writes a small Raspberry Pi disk with a file on each FAT partition.
func writeRPi(t *testing.T) (string, Layout) {
	t.Helper()
	l, err := PlanRPi("arm64", "minimal-rpi4", rpiSizes)
	if err != nil {
		t.Fatal(err)
	}
	fat := map[string]*fstree.Tree{}
	for _, label := range []string{contract.RPiAutoLabel, contract.SlotA.RPiBootLabel()} {
		tree := fstree.New()
		if err := tree.File("hello-"+strings.ToLower(label)+".txt", 0o644, []byte(label+"\n")); err != nil {
			t.Fatal(err)
		}
		fat[label] = tree
	}
	img := filepath.Join(t.TempDir(), "rpi.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := Write(f, l, Contents{FAT: fat, Epoch: time.Unix(1e9, 0)}); err != nil {
		t.Fatal(err)
	}
	return img, l
}

func TestPlanRPi(t *testing.T) {
	l, err := PlanRPi("arm64", "minimal-rpi4", rpiSizes)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		label   string
		typ     gpt.Type
		size    int64
		mbrType byte
	}{
		{contract.RPiAutoLabel, TypeBasicData, RPiAutoSize, 0x0c},
		{contract.SlotA.RPiBootLabel(), TypeBasicData, 64 << 20, 0x0c},
		{contract.SlotB.RPiBootLabel(), TypeBasicData, 64 << 20, 0x0c},
		{LabelA, gpt.LinuxRootArm64, 16 << 20, 0},
		{LabelB, gpt.LinuxRootArm64, 16 << 20, 0},
		{LabelData, TypeVar, 16 << 20, 0},
	}
	if len(l.Partitions) != len(want) {
		t.Fatalf("%d partitions, want %d", len(l.Partitions), len(want))
	}
	off := int64(1 << 20)
	for i, w := range want {
		p := l.Partitions[i]
		if p.Index != i+1 || p.Label != w.label || p.Type != w.typ || p.Size != w.size || p.Start != off || p.MBRType != w.mbrType || p.FAT != (w.mbrType != 0) {
			t.Errorf("partition %d = %+v, want %+v at %d", i+1, p, w, off)
		}
		off += w.size
	}
	// The firmware's boot_partition numbers are the GPT's.
	for _, s := range contract.Slots {
		if got := l.Partitions[s.RPiBootPartition()-1].Label; got != s.RPiBootLabel() {
			t.Errorf("MBR partition %d is %s, want %s", s.RPiBootPartition(), got, s.RPiBootLabel())
		}
	}
	if l.MBRSignature == 0 {
		t.Error("no disk signature")
	}
	if again, _ := PlanRPi("arm64", "minimal-rpi4", rpiSizes); again.MBRSignature != l.MBRSignature {
		t.Error("the same seed gave another disk signature")
	}
	if other, _ := PlanRPi("arm64", "other-rpi4", rpiSizes); other.MBRSignature == l.MBRSignature {
		t.Error("another seed gave the same disk signature")
	}
}

// TestHybridMBR parses the written MBR back: entries 1-3 are the GPT's FAT
// partitions, entry 4 the 0xEE entry from LBA 1 that Linux requires, and
// go-diskfs (as Linux) still reads the GPT.
func TestHybridMBR(t *testing.T) {
	img, l := writeRPi(t)
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := readMBR(f)
	if err != nil {
		t.Fatal(err)
	}
	if m.Signature != l.MBRSignature {
		t.Errorf("disk signature %08x, want %08x", m.Signature, l.MBRSignature)
	}
	for i := 0; i < 3; i++ {
		p, e := l.Partitions[i], m.Entries[i]
		if e.Type != 0x0c || int64(e.FirstLBA)*sector != p.Start || int64(e.Sectors)*sector != p.Size || e.Status != 0 {
			t.Errorf("MBR entry %d = %+v, want FAT32 LBA at %d, %d bytes (%s)", i+1, e, p.Start, p.Size, p.Label)
		}
	}
	if e := m.Entries[3]; e.Type != 0xEE || e.FirstLBA != 1 || int64(e.Sectors) != l.Size/sector-1 {
		t.Errorf("MBR entry 4 = %+v, want 0xEE from LBA 1 over the disk", e)
	}
	d, err := diskfs.Open(img, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		t.Fatal(err)
	}
	pt, err := d.GetPartitionTable()
	if err != nil {
		t.Fatal(err)
	}
	table, ok := pt.(*gpt.Table)
	if !ok || len(table.Partitions) != 6 || table.Partitions[1].Name != contract.SlotA.RPiBootLabel() {
		t.Fatalf("go-diskfs reads %T %+v, want the GPT", pt, pt)
	}
}

// TestUEFIHasNoHybridMBR: a UEFI disk keeps go-diskfs's protective MBR.
func TestUEFIHasNoHybridMBR(t *testing.T) {
	l, err := Plan("amd64", "x", Sizes{ESP: 40 << 20, Slot: 8 << 20, Data: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "uefi.img")
	f, _ := os.Create(img)
	defer f.Close()
	if err := Write(f, l, Contents{Epoch: time.Unix(1e9, 0)}); err != nil {
		t.Fatal(err)
	}
	m, err := readMBR(f)
	if err != nil {
		t.Fatal(err)
	}
	if m.Entries[0].Type != 0xEE || m.Entries[1].Type != 0 || m.Entries[3].Type != 0 {
		t.Errorf("UEFI MBR entries %+v, want one protective 0xEE entry", m.Entries)
	}
}

// tool runs an independent tool, skipping when it is absent (not in CI).
func tool(t *testing.T, name string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("%s is not installed (make deps installs it)", name)
		}
		t.Fatalf("%s is not installed", name)
	}
	b, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, b)
	}
	return string(b)
}

// TestRPiDiskTools checks the Pi disk with sfdisk (GPT and, read as dos,
// the hybrid MBR), fsck.vfat and mtools.
func TestRPiDiskTools(t *testing.T) {
	img, l := writeRPi(t)
	var gptDump struct {
		PartitionTable struct {
			Label      string `json:"label"`
			Partitions []struct {
				Start, Size int64
				Type, Name  string
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal([]byte(tool(t, "sfdisk", "--json", img)), &gptDump); err != nil {
		t.Fatal(err)
	}
	if pt := gptDump.PartitionTable; pt.Label != "gpt" || len(pt.Partitions) != 6 {
		t.Fatalf("sfdisk --json: %+v, want a GPT of 6 partitions", pt)
	}
	for i, p := range gptDump.PartitionTable.Partitions {
		if want := l.Partitions[i]; p.Name != want.Label || p.Start*sector != want.Start || p.Size*sector != want.Size || !strings.EqualFold(p.Type, string(want.Type)) {
			t.Errorf("sfdisk GPT partition %d = %+v, want %+v", i+1, p, want)
		}
	}
	dos := tool(t, "fdisk", "-t", "dos", "-l", "-o", "Device,Start,Sectors,Id", img)
	if !strings.Contains(dos, "Disklabel type: dos") {
		t.Fatalf("fdisk -t dos does not read the MBR:\n%s", dos)
	}
	// Device Start Sectors Id, one line per entry.
	rows := map[string]bool{}
	for _, line := range strings.Split(dos, "\n") {
		if f := strings.Fields(line); len(f) == 4 && strings.HasPrefix(f[0], img) {
			rows[strings.Join(f[1:], " ")] = true
		}
	}
	for i := 0; i < 3; i++ {
		p := l.Partitions[i]
		if want := fmt.Sprintf("%d %d c", p.Start/sector, p.Size/sector); !rows[want] {
			t.Errorf("fdisk -t dos lacks entry %d %q:\n%s", i+1, want, dos)
		}
	}
	if want := fmt.Sprintf("1 %d ee", l.Size/sector-1); !rows[want] || len(rows) != 4 {
		t.Errorf("fdisk -t dos: want the three FAT entries and %q:\n%s", want, dos)
	}
	if !strings.Contains(dos, fmt.Sprintf("Disk identifier: 0x%08x", l.MBRSignature)) {
		t.Errorf("fdisk -t dos: want disk identifier 0x%08x:\n%s", l.MBRSignature, dos)
	}
	for i, p := range l.Partitions[:3] {
		part := filepath.Join(t.TempDir(), "part.img")
		tool(t, "dd", "if="+img, "of="+part, "bs=1M", fmt.Sprintf("skip=%d", p.Start>>20), fmt.Sprintf("count=%d", p.Size>>20), "status=none")
		tool(t, "fsck.vfat", "-n", part)
		label := tool(t, "mlabel", "-s", "-i", part, "::")
		if !strings.Contains(label, p.Label) {
			t.Errorf("partition %d's FAT label: %q, want %s", i+1, label, p.Label)
		}
	}
}

// TestOpenESPOnRPi: on a Raspberry Pi's disk the per-node files go to
// CAIRN-AUTO, which both slots share.
func TestOpenESPOnRPi(t *testing.T) {
	img, l := writeRPi(t)
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	e, err := OpenESP(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.WriteFile(contract.NodeFileName, []byte("name: n1\n")); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	auto := l.Partitions[0]
	part := filepath.Join(t.TempDir(), "auto.img")
	tool(t, "dd", "if="+img, "of="+part, "bs=1M", fmt.Sprintf("skip=%d", auto.Start>>20), fmt.Sprintf("count=%d", auto.Size>>20), "status=none")
	tool(t, "fsck.vfat", "-n", part)
	if got := tool(t, "mtype", "-i", part, "::"+contract.NodeFileName); got != "name: n1\n" {
		t.Errorf("CAIRN-AUTO's %s = %q", contract.NodeFileName, got)
	}
}

// TestRPiDiskGrowKeepsHybridMBR: cairn-init's first-boot growth of
// CAIRN-DATA (agent/boot/gptgrow) rewrites the GPT but must leave the
// hybrid MBR, without which the Pi's firmware finds no boot partition.
// (go-diskfs reads a hybrid MBR as no protective MBR, so it rewrites none.)
func TestRPiDiskGrowKeepsHybridMBR(t *testing.T) {
	img, l := writeRPi(t)
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	before, err := readMBR(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(l.Size + 64<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// On an image file the kernel's BLKPG ioctl fails after the table is written.
	if _, ok, err := gptgrow.Grow(img, LabelData); !ok || err != nil && !strings.Contains(err.Error(), "BLKPG_RESIZE_PARTITION") {
		t.Fatalf("Grow: ok=%v, %v", ok, err)
	}
	f, err = os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	after, err := readMBR(f)
	if err != nil {
		t.Fatal(err)
	}
	if *after != *before {
		t.Errorf("growing CAIRN-DATA changed the MBR:\n%+v\n%+v", before.Entries, after.Entries)
	}
	tool(t, "sfdisk", "--verify", img)
}
