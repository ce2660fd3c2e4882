package output

import (
	"bytes"
	"context"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/builder/netboot"
	"github.com/cairn-edge/cairn/builder/plan"
	"github.com/u-root/u-root/pkg/cpio"
)

// writePXE writes p as a PXE bundle into a new directory.
func writePXE(t *testing.T, p *plan.Plan) (string, *Files, error) {
	t.Helper()
	dir := t.TempDir()
	files, err := PXE{}.Write(context.Background(), p, dir)
	if err != nil {
		return "", nil, err
	}
	return files.Files[0].Path, files, nil
}

func TestPXE(t *testing.T) {
	p := smallPlan(t)
	p.Image.BootModules = []string{"virtio_blk", "squashfs", "loop"}
	bundle, files, err := writePXE(t, p)
	if err != nil {
		t.Fatal(err)
	}
	if files.Files[0].Ext != ".pxe" || len(files.Files) != 1 {
		t.Errorf("files %+v; want one .pxe directory", files.Files)
	}
	folder := filepath.Join(bundle, "amd64")
	m, err := netboot.Read(folder)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Verify(folder); err != nil {
		t.Fatal(err)
	}
	if m.Name != "edge" || m.Version != "1.2.0" || m.Kernel.Name != "vmlinuz" || len(m.Initrds) != 2 ||
		m.Initrds[0].Name != "initramfs" || m.Initrds[1].Name != "slot.cpio" {
		t.Errorf("manifest %+v", m)
	}
	if want := "transparent_hugepage=never console=ttyS0 cairn.slot=a cairn.media=ram"; m.Cmdline != want {
		t.Errorf("cmdline %q, want %q", m.Cmdline, want)
	}
	kernel, _ := os.ReadFile(filepath.Join(folder, "vmlinuz"))
	if want, _ := os.ReadFile(p.Boot.Kernel); !bytes.Equal(kernel, want) {
		t.Error("the bundle's kernel is not the plan's")
	}
	// The second initrd holds the slot's squashfs alone, uncompressed.
	f, err := os.Open(filepath.Join(folder, "slot.cpio"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(f))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range recs {
		names = append(names, r.Name)
	}
	if len(names) != 1 || names[0] != "slot.squashfs" || recs[0].FileSize != uint64(files.SlotSize) {
		t.Errorf("slot.cpio holds %v (%d bytes); want slot.squashfs of %d bytes", names, recs[0].FileSize, files.SlotSize)
	}
	again, _, err := writePXE(t, p)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := treeOf(t, bundle), treeOf(t, again); !maps.Equal(a, b) {
		t.Errorf("two writes of one plan differ:\n%v\n%v", a, b)
	}
}

func TestPXERefusesBoardWithoutLoop(t *testing.T) {
	p := smallPlan(t)
	p.Image.BootModules = []string{"virtio_blk", "squashfs"}
	if _, _, err := writePXE(t, p); err == nil || !strings.Contains(err.Error(), "bootModules lack loop (add it to the board file's kernel.bootModules)") {
		t.Fatalf("PXE of a board without loop: %v", err)
	}
}
