package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/agent/update/artifact"
)

func TestCutFaults(t *testing.T) {
	for _, tc := range []struct {
		name       string
		down, tail int64
		cuts       int
		want       []int64 // After of each cut
		wantErr    bool
	}{
		{"three in the tail", 1000, 400, 3, []int64{700, 800, 900}, false},
		{"tail is everything", 400, 400, 3, []int64{100, 200, 300}, false},
		{"one", 10, 10, 1, []int64{5}, false},
		{"tail longer than the download", 100, 200, 3, nil, true},
		{"no tail", 100, 0, 3, nil, true},
		{"no cuts", 100, 50, 0, nil, true},
		{"too small for the cuts", 100, 3, 3, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, err := cutFaults(tc.down, tc.tail, tc.cuts)
			if (err != nil) != tc.wantErr {
				t.Fatalf("cutFaults(%d, %d, %d): %v, want error %v", tc.down, tc.tail, tc.cuts, err, tc.wantErr)
			}
			var got []int64
			for _, f := range fs {
				if !f.Cut || f.Stall != 0 {
					t.Errorf("fault %+v: want a cut without a stall", f)
				}
				got = append(got, f.After)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("cuts after %v bytes, want %v", got, tc.want)
			}
		})
	}
}

func TestAgentProcess(t *testing.T) {
	for _, tc := range []struct {
		name string
		ps   []api.Process
		want int // PID; 0: none
	}{
		{"none", []api.Process{{PID: 1, Name: "init"}}, 0},
		{"one", []api.Process{{PID: 1, Name: "init"}, {PID: 90, Name: "cairn-agent"}}, 90},
		{"the first started", []api.Process{{PID: 120, Name: "cairn-agent"}, {PID: 1, Name: "init"}, {PID: 90, Name: "cairn-agent"}}, 90},
		{"not containerd", []api.Process{{PID: 80, Name: "containerd"}, {PID: 90, Name: "cairn-agent"}}, 90},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, ok := agentProcess(tc.ps)
			got := 0
			if ok {
				got = p.PID
			}
			if got != tc.want {
				t.Errorf("agentProcess: PID %d, want %d", got, tc.want)
			}
		})
	}
}

func TestMemoryFigure(t *testing.T) {
	const m = 1 << 20
	idle := []memSample{{rss: 18 * m, pss: 14 * m, anon: 6 * m}, {rss: 19 * m, pss: 14 * m, anon: 7 * m}, {rss: 30 * m, pss: 20 * m, anon: 6 * m}}
	during := []memSample{
		{rss: 19 * m, pss: 14 * m, anon: 6 * m},
		{rss: 25 * m, pss: 18 * m, anon: 9 * m, phase: "downloading"},
		{rss: 24 * m, pss: 21 * m, anon: 12 * m, phase: "verifying"},
	}
	f, err := memoryFigure(idle, during)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := f.idle, (memSample{rss: 19 * m, pss: 14 * m, anon: 6 * m}); got != want {
		t.Errorf("idle %+v, want the medians %+v (one outlier sample must not move it)", got, want)
	}
	if got, want := f.peak, (memSample{rss: 25 * m, pss: 21 * m, anon: 12 * m}); got != want {
		t.Errorf("peak %+v, want each measure's maximum %+v", got, want)
	}
	if f.peakPhase != "downloading" {
		t.Errorf("peak phase %q, want the RSS peak's, downloading", f.peakPhase)
	}
	rss, pss, anon := f.above()
	if rss != 6*m || pss != 7*m || anon != 6*m {
		t.Errorf("above idle %d / %d / %d, want 6 / 7 / 6 MiB", rss, pss, anon)
	}
	if f.idleSamples != 3 || f.samples != 3 {
		t.Errorf("samples %d / %d, want 3 / 3", f.idleSamples, f.samples)
	}
	if _, err := memoryFigure(idle, nil); err == nil {
		t.Error("no upgrade samples: no error")
	}
	if _, err := memoryFigure(nil, during); err == nil {
		t.Error("no idle samples: no error")
	}
}

func TestFirstDelta(t *testing.T) {
	console := "cairn: upgrade started version=2.0.0 slot=b digest=sha256:00\r\n" +
		"cairn: upgrade delta local=13107200 fetch=65536 ranges=3 resume=0\r\n" +
		"cairn: upgrade armed slot=b version=2.0.0 fetched=90000; rebooting into the trial\r\n" +
		"cairn: upgrade delta local=1 fetch=2 ranges=3 resume=4\r\n"
	got, want := firstDelta(console), &deltaLine{local: 13107200, fetch: 65536, ranges: 3, resume: 0}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("firstDelta: %+v, want %+v", got, want)
	}
	if d := firstDelta("cairn: upgrade armed slot=b version=2.0.0 fetched=1\n"); d != nil {
		t.Errorf("firstDelta of a whole download: %+v, want nil", d)
	}
}

// testManifest is an artifact manifest with a slot, kernel, initramfs and
// (with chunks) a chunk index layer.
func testManifest(t *testing.T, chunks bool) []byte {
	t.Helper()
	d := func(mt, content string, size int64) artifact.Descriptor {
		s := sha256.Sum256([]byte(content))
		return artifact.Descriptor{MediaType: mt, Digest: "sha256:" + hex.EncodeToString(s[:]), Size: size}
	}
	m := artifact.Manifest{
		SchemaVersion: 2, MediaType: artifact.ManifestMediaType, ArtifactType: artifact.ArtifactType,
		Config:      d(artifact.ConfigMediaType, "config", 100),
		Layers:      []artifact.Descriptor{d(artifact.SlotMediaType, "slot", 10000), d(artifact.KernelMediaType, "kernel", 2000), d(artifact.InitrdMediaType, "initrd", 500)},
		Annotations: map[string]string{artifact.AnnotationVersion: "2.0.0", artifact.AnnotationBoard: "qemu-x86_64"},
	}
	if chunks {
		m.Layers = append(m.Layers, d(artifact.ChunksMediaType, "chunks", 40))
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSizeOf(t *testing.T) {
	b := testManifest(t, true)
	got, err := sizeOf(b)
	if err != nil {
		t.Fatal(err)
	}
	if want := (artifactSize{total: int64(len(b)) + 100 + 10000 + 2000 + 500 + 40, slot: 10000}); got != want {
		t.Errorf("sizeOf: %+v, want %+v", got, want)
	}
	if _, err := sizeOf([]byte(`{"schemaVersion": 2}`)); err == nil {
		t.Error("sizeOf of a manifest that is no artifact: no error")
	}
}

func TestWithoutChunks(t *testing.T) {
	m, err := withoutChunks(testManifest(t, true))
	if err != nil {
		t.Fatal(err)
	}
	u, err := artifact.ParseUpdate(m)
	if err != nil {
		t.Fatalf("the manifest without chunks does not parse: %v", err)
	}
	if u.Chunks != nil {
		t.Error("the chunk index is still there")
	}
	orig, _ := artifact.ParseUpdate(testManifest(t, true))
	if !reflect.DeepEqual([]artifact.Descriptor{u.Slot, u.Kernel, u.Initrd, u.Manifest.Config}, []artifact.Descriptor{orig.Slot, orig.Kernel, orig.Initrd, orig.Manifest.Config}) {
		t.Error("the other layers or the config changed")
	}
	if !reflect.DeepEqual(u.Manifest.Annotations, orig.Manifest.Annotations) || u.Manifest.ArtifactType != orig.Manifest.ArtifactType {
		t.Error("the annotations or the artifact type changed")
	}
	if _, err := withoutChunks(testManifest(t, false)); err == nil || !strings.Contains(err.Error(), "no chunk index") {
		t.Errorf("a manifest without a chunk index: %v, want an error saying so", err)
	}
}

func TestDropChunkIndex(t *testing.T) {
	src, dst := filepath.Join(t.TempDir(), "src"), filepath.Join(t.TempDir(), "dst")
	blobs := filepath.Join(src, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		t.Fatal(err)
	}
	put := func(b []byte) string {
		s := sha256.Sum256(b)
		h := hex.EncodeToString(s[:])
		if err := os.WriteFile(filepath.Join(blobs, h), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return "sha256:" + h
	}
	put([]byte("slot bytes"))
	m := testManifest(t, true)
	ix := artifact.Index{SchemaVersion: 2, MediaType: artifact.IndexMediaType, Manifests: []artifact.Descriptor{
		{MediaType: artifact.ManifestMediaType, Digest: put(m), Size: int64(len(m)), Annotations: map[string]string{"org.opencontainers.image.ref.name": "2.0.0"}},
	}}
	b, _ := json.Marshal(ix)
	if err := os.WriteFile(filepath.Join(src, "index.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}

	if err := dropChunkIndex(src, dst); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dst, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := artifact.ParseIndex(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Manifests) != 1 || got.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "2.0.0" {
		t.Fatalf("index %+v: want its one manifest with its annotations", got)
	}
	d := got.Manifests[0]
	nm, err := os.ReadFile(filepath.Join(dst, "blobs", "sha256", strings.TrimPrefix(d.Digest, "sha256:")))
	if err != nil {
		t.Fatalf("the new manifest's blob: %v", err)
	}
	if s := sha256.Sum256(nm); "sha256:"+hex.EncodeToString(s[:]) != d.Digest || int64(len(nm)) != d.Size {
		t.Errorf("index names %s (%d B), the blob is another", d.Digest, d.Size)
	}
	if u, err := artifact.ParseUpdate(nm); err != nil || u.Chunks != nil {
		t.Errorf("the new manifest: %v, chunks %v; want an artifact without a chunk index", err, u)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "blobs", "sha256", strings.TrimPrefix(put([]byte("slot bytes")), "sha256:"))); err != nil || string(b) != "slot bytes" {
		t.Errorf("the source's blobs are not in the copy: %v %q", err, b)
	}
	if _, err := os.Stat(filepath.Join(dst, "oci-layout")); err != nil {
		t.Error(err)
	}
}

func TestLineLogger(t *testing.T) {
	var l lineLogger
	for _, p := range []string{"upgrade of x accepted\n", "downloading [--] 0%\rdownloading [##] 100%", "\n", "committed: slot b"} {
		l.Write([]byte(p))
	}
	if got, want := l.String(), "upgrade of x accepted\ndownloading [--] 0%\rdownloading [##] 100%\ncommitted: slot b"; got != want {
		t.Errorf("kept %q, want everything written %q", got, want)
	}
	if got, want := string(l.part), "committed: slot b"; got != want {
		t.Errorf("pending %q, want the unterminated line %q", got, want)
	}
}

func TestSpreadAndPlural(t *testing.T) {
	if got := spread([]time.Duration{time.Second}); got != "" {
		t.Errorf("spread of one run: %q, want nothing", got)
	}
	if got, want := spread([]time.Duration{3 * time.Second, time.Second, 2 * time.Second}), " (min 1s, max 3s)"; got != want {
		t.Errorf("spread: %q, want %q", got, want)
	}
	for n, want := range map[int64]string{0: "0 ranges", 1: "1 range", 4: "4 ranges"} {
		if got := plural(n, "range"); got != want {
			t.Errorf("plural(%d): %q, want %q", n, got, want)
		}
	}
}
