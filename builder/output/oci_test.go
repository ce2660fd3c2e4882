package output

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/agent/update/artifact"
	"github.com/cairn-edge/cairn/agent/update/chunk"
	"github.com/cairn-edge/cairn/builder/disk"
	"github.com/cairn-edge/cairn/builder/firmware"
	"github.com/cairn-edge/cairn/builder/fstree"
	"github.com/cairn-edge/cairn/builder/plan"
	"github.com/cairn-edge/cairn/builder/spec"
)

// smallPlan is a plan with tiny trees and a fake kernel: enough for the
// writers, no inputs resolved.
func smallPlan(t *testing.T) *plan.Plan {
	t.Helper()
	kernel := filepath.Join(t.TempDir(), "vmlinuz")
	if err := os.WriteFile(kernel, []byte(strings.Repeat("MZkernel", 1024)), 0o644); err != nil {
		t.Fatal(err)
	}
	slot := fstree.New()
	big := make([]byte, 300<<10)
	rand.NewChaCha8([32]byte{7}).Read(big) // incompressible, so the slot spans a few chunks
	for name, data := range map[string][]byte{
		"sbin/init":         []byte("#!init"),
		"etc/cairn/release": []byte("VERSION=1.2.0\n"),
		"usr/share/big":     big,
	} {
		if err := slot.File(name, 0o644, data); err != nil {
			t.Fatal(err)
		}
	}
	initrd := fstree.New()
	if err := initrd.File("init", 0o755, []byte("#!init")); err != nil {
		t.Fatal(err)
	}
	img := &spec.Image{
		Spec:  &spec.Spec{Name: "edge", Version: "1.2.0"},
		Board: &spec.Board{Name: "qemu-x86_64", Arch: "amd64"},
	}
	return &plan.Plan{
		Image:         img,
		Name:          img.OutputName(),
		Epoch:         time.Unix(1704067200, 0).UTC(),
		KernelVersion: "6.1.0-test",
		Slot:          slot,
		Initramfs:     initrd,
		Boot: firmware.Boot{
			Kernel:  kernel,
			Cmdline: []string{"transparent_hugepage=never", "console=ttyS0"},
			Version: "1.2.0",
		},
	}
}

func writeOCI(t *testing.T, p *plan.Plan) (string, *Files) {
	t.Helper()
	dir := t.TempDir()
	files, err := OCI{}.Write(context.Background(), p, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files.Files) != 1 || files.Files[0].Ext != ".oci" {
		t.Fatalf("files = %+v, want one .oci directory", files.Files)
	}
	return files.Files[0].Path, files
}

func readJSON(t *testing.T, path string, v any) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b
}

func blobFile(dir, digest string) string {
	return filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(digest, "sha256:"))
}

// TestOCI writes the artifact of a small plan and reads it as the agent
// will: the layout's index names one manifest, which ParseUpdate accepts;
// its config passes ParseConfig and says what the plan says; every blob
// matches its descriptor; the slot is stored as is.
func TestOCI(t *testing.T) {
	p := smallPlan(t)
	dir, files := writeOCI(t, p)

	var layoutFile struct {
		Version string `json:"imageLayoutVersion"`
	}
	readJSON(t, filepath.Join(dir, "oci-layout"), &layoutFile)
	if layoutFile.Version != "1.0.0" {
		t.Errorf("oci-layout version %q", layoutFile.Version)
	}
	var ix artifact.Index
	readJSON(t, filepath.Join(dir, "index.json"), &ix)
	if len(ix.Manifests) != 1 {
		t.Fatalf("index.json has %d manifests, want 1", len(ix.Manifests))
	}
	md := ix.Manifests[0]
	if md.MediaType != artifact.ManifestMediaType || md.ArtifactType != artifact.ArtifactType || md.Annotations[AnnotationRefName] != "1.2.0" || md.Annotations[artifact.AnnotationBoard] != "qemu-x86_64" {
		t.Errorf("index.json's descriptor: %+v", md)
	}

	// Every blob the layout holds is named, and matches its digest and size.
	var all []artifact.Descriptor
	raw, err := os.ReadFile(blobFile(dir, md.Digest))
	if err != nil {
		t.Fatal(err)
	}
	u, err := artifact.ParseUpdate(raw)
	if err != nil {
		t.Fatalf("ParseUpdate: %v\n%s", err, raw)
	}
	all = append(all, md, u.Manifest.Config)
	all = append(all, u.Manifest.Layers...)
	var total int64
	for i, d := range all {
		b, err := os.ReadFile(blobFile(dir, d.Digest))
		if err != nil {
			t.Fatalf("%s: %v", d.MediaType, err)
		}
		sum := sha256.Sum256(b)
		if got := "sha256:" + hex.EncodeToString(sum[:]); got != d.Digest || int64(len(b)) != d.Size {
			t.Errorf("%s blob: digest %s size %d, descriptor says %s size %d", d.MediaType, got, len(b), d.Digest, d.Size)
		}
		if i > 0 { // the manifest is counted once, below
			total += d.Size
		}
	}
	blobs, _ := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	if len(blobs) != len(all) {
		t.Errorf("blobs/sha256 holds %d files, the artifact names %d", len(blobs), len(all))
	}
	if files.Size != total+md.Size || files.SlotSize != u.Slot.Size || files.InitramfsSize != u.Initrd.Size {
		t.Errorf("Files = %+v; blobs total %d, slot %d, initrd %d", files, total+md.Size, u.Slot.Size, u.Initrd.Size)
	}

	// The slot blob is a squashfs image, stored as is.
	slot, _ := os.ReadFile(blobFile(dir, u.Slot.Digest))
	if !bytes.HasPrefix(slot, []byte("hsqs")) {
		t.Errorf("the slot layer does not start with the squashfs magic: % x", slot[:4])
	}
	kernel, _ := os.ReadFile(blobFile(dir, u.Kernel.Digest))
	if want, _ := os.ReadFile(p.Boot.Kernel); !bytes.Equal(kernel, want) {
		t.Error("the kernel layer is not the plan's kernel")
	}

	cfgRaw, _ := os.ReadFile(blobFile(dir, u.Manifest.Config.Digest))
	cfg, err := artifact.ParseConfig(cfgRaw)
	if err != nil {
		t.Fatalf("ParseConfig: %v\n%s", err, cfgRaw)
	}
	want := artifact.Config{Name: "edge", Version: "1.2.0", Board: "qemu-x86_64", Arch: "amd64", Kernel: "6.1.0-test",
		Cmdline: []string{"transparent_hugepage=never", "console=ttyS0"}, Created: "2024-01-01T00:00:00Z"}
	if !configEqual(*cfg, want) {
		t.Errorf("config = %+v, want %+v", *cfg, want)
	}
	if err := cfg.Check("qemu-x86_64", "amd64"); err != nil {
		t.Error(err)
	}

	wantAnn := map[string]string{
		artifact.AnnotationVersion: "1.2.0", artifact.AnnotationTitle: "edge", artifact.AnnotationCreated: "2024-01-01T00:00:00Z",
		artifact.AnnotationBoard: "qemu-x86_64", artifact.AnnotationArch: "amd64",
	}
	for k, v := range wantAnn {
		if u.Manifest.Annotations[k] != v {
			t.Errorf("manifest annotation %s = %q, want %q", k, u.Manifest.Annotations[k], v)
		}
	}
	var titles []string
	for _, l := range u.Manifest.Layers {
		titles = append(titles, l.Annotations[artifact.AnnotationTitle])
	}
	if want := []string{SlotTitle, KernelTitle, InitrdTitle, ChunksTitle}; !slices.Equal(titles, want) {
		t.Errorf("layer titles %v, want %v", titles, want)
	}

	// The chunk index covers the slot blob, chunk by chunk.
	if u.Chunks == nil {
		t.Fatal("the artifact has no chunk index")
	}
	ixRaw, _ := os.ReadFile(blobFile(dir, u.Chunks.Digest))
	cix, err := chunk.Parse(ixRaw, u.Slot.Size)
	if err != nil {
		t.Fatalf("chunk.Parse: %v", err)
	}
	if cix.Size != u.Slot.Size || len(cix.Chunks) < 2 {
		t.Errorf("chunk index: size %d in %d chunks, slot %d bytes", cix.Size, len(cix.Chunks), u.Slot.Size)
	}
	for _, c := range cix.Chunks {
		if sha256.Sum256(slot[c.Offset:c.End()]) != c.Sum {
			t.Errorf("chunk at %d+%d does not match the slot's bytes", c.Offset, c.Length)
		}
	}
}

func configEqual(a, b artifact.Config) bool {
	return a.Name == b.Name && a.Version == b.Version && a.Board == b.Board && a.Arch == b.Arch &&
		a.Kernel == b.Kernel && a.Created == b.Created && slices.Equal(a.Cmdline, b.Cmdline)
}

// TestOCIReproducible writes the same plan twice: the layouts are equal
// file for file, byte for byte.
func TestOCIReproducible(t *testing.T) {
	p := smallPlan(t)
	a, _ := writeOCI(t, p)
	b, _ := writeOCI(t, p)
	if got, want := treeOf(t, b), treeOf(t, a); !maps.Equal(got, want) {
		t.Errorf("two writes of one plan differ:\n%v\n%v", keys(got), keys(want))
	}
}

func treeOf(t *testing.T, root string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		sum := sha256.Sum256(b)
		files[rel] = hex.EncodeToString(sum[:])
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func keys(m map[string]string) []string {
	var ks []string
	for k, v := range m {
		ks = append(ks, k+"="+v[:12])
	}
	slices.Sort(ks)
	return ks
}

// TestOCIRefusesBadConfig: what the agent would refuse is refused at build
// time, the config before the slot is written.
func TestOCIRefusesBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*plan.Plan)
		want   string
	}{
		{"slot in cmdline", func(p *plan.Plan) { p.Boot.Cmdline = append(p.Boot.Cmdline, "cairn.slot=a") }, "names a slot"},
		{"bad arch", func(p *plan.Plan) { p.Image.Board.Arch = "riscv64" }, "not amd64 or arm64"},
		{"slot too large", func(p *plan.Plan) {
			p.Layout.Partitions = []disk.Partition{{Index: 2, Label: disk.LabelA, Size: 64 << 10}}
		}, "raise disk.slotSize"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := smallPlan(t)
			tc.change(p)
			dir := t.TempDir()
			_, err := OCI{}.Write(context.Background(), p, dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Write = %v, want an error with %q", err, tc.want)
			}
			if tc.name != "slot too large" { // that one is found once the slot is written
				if left, _ := os.ReadDir(dir); len(left) != 0 {
					t.Errorf("a refused write left %v", left)
				}
			}
		})
	}
}
