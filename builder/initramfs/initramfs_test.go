package initramfs

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/cairn-edge/cairn/builder/fstree"
	"github.com/klauspost/compress/zstd"
	"github.com/u-root/u-root/pkg/cpio"
)

func TestWriteRoundTrip(t *testing.T) {
	host := filepath.Join(t.TempDir(), "virtio_blk.ko")
	os.WriteFile(host, []byte("module"), 0o644)
	tr := fstree.New()
	tr.File("init", 0o755, []byte("#!init"))
	tr.HostFile("lib/modules/6.1/kernel/virtio_blk.ko", 0o644, host)
	tr.Symlink("sbin", "bin")

	var a, b bytes.Buffer
	if err := Write(tr, &a); err != nil {
		t.Fatal(err)
	}
	if err := Write(tr, &b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two writes of the same tree differ")
	}
	zr, err := zstd.NewReader(&a)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := zr.DecodeAll(a.Bytes(), nil)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range recs {
		names = append(names, r.Name)
	}
	want := []string{"init", "lib", "lib/modules", "lib/modules/6.1", "lib/modules/6.1/kernel", "lib/modules/6.1/kernel/virtio_blk.ko", "sbin"}
	if len(names) != len(want) {
		t.Fatalf("records = %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("records = %v, want %v", names, want)
		}
	}
	if recs[0].Mode != cpio.S_IFREG|0o755 || recs[0].MTime != 0 {
		t.Errorf("init record = %+v, want a 0755 file with mtime 0", recs[0].Info)
	}
}
