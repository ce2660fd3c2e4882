package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cairn-edge/cairn/agent/update/artifact"
	"github.com/cairn-edge/cairn/agent/update/chunk"
	"github.com/cairn-edge/cairn/builder/build"
	"github.com/cairn-edge/cairn/qemu-tests/testimage"
)

// lineChange is a one-line source change: in File (relative to the
// repository), the line holding Old gets New in its place.
type lineChange struct {
	File, Old, New string
}

// The changes the delta figures are made of: one log message of the
// agent and one line the test service prints, each reworded. The agent's
// message is changed twice: once 5 bytes longer, which moves what the
// linker puts after it in .rodata and so every instruction that refers to
// something there; once at the same length (a colon for a semicolon),
// which moves nothing and shows what the image layout costs on its own.
var (
	agentLine     = lineChange{"agent/cmd/cairn-agent/main.go", `"ESP not mounted; no per-node settings"`, `"ESP not mounted; no per-node settings read"`}
	agentSameLine = lineChange{"agent/cmd/cairn-agent/main.go", `"ESP not mounted; no per-node settings"`, `"ESP not mounted: no per-node settings"`}
	helloLine     = lineChange{"qemu-tests/testdata/hello/main.go", `"hello from the test service, idling"`, `"hello from the test service, idle now"`}
)

// overlay writes a copy of c.File with the change applied into dir and a
// `go build -overlay` file that puts it in the original's place, and
// returns the overlay file's path.
func (c lineChange) overlay(root, dir string) (string, error) {
	src := filepath.Join(root, c.File)
	b, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	lines := strings.SplitAfter(string(b), "\n")
	n := 0
	for i, l := range lines {
		if strings.Contains(l, c.Old) {
			lines[i], n = strings.Replace(l, c.Old, c.New, 1), n+1
		}
	}
	if n != 1 {
		return "", fmt.Errorf("%s: %d lines hold %s, want exactly 1 (update the change in qemu-tests/cmd/cairn-bench/delta.go)", c.File, n, c.Old)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	changed := filepath.Join(dir, filepath.Base(c.File))
	if err := os.WriteFile(changed, []byte(strings.Join(lines, "")), 0o644); err != nil {
		return "", err
	}
	ov, _ := json.Marshal(map[string]map[string]string{"Replace": {src: changed}})
	path := filepath.Join(dir, "overlay.json")
	return path, os.WriteFile(path, ov, 0o644)
}

// deltaEnv is env writing OCI artifacts, with its own binaries for arch
// compiled with change (nil: none) and the container runtime and
// cairn-kube linked from runtimeDir.
func deltaEnv(env *testimage.Env, dir, arch, runtimeDir string, change *lineChange) (*testimage.Env, error) {
	e := *env
	e.BinDir, e.Format, e.Overlay = filepath.Join(dir, "bin"), "oci", ""
	if change != nil {
		ov, err := change.overlay(e.Root, filepath.Join(dir, "src"))
		if err != nil {
			return nil, err
		}
		e.Overlay = ov
	}
	if err := e.Binaries(arch); err != nil {
		return nil, err
	}
	e.Overlay = "" // the agent only: other programs of this Env are built from the tree
	return &e, linkMissing(filepath.Join(runtimeDir, "linux-"+arch), filepath.Join(e.BinDir, "linux-"+arch))
}

// linkMissing links each file of from that to lacks.
func linkMissing(from, to string) error {
	from, err := filepath.Abs(from)
	if err != nil {
		return err
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		return fmt.Errorf("container runtime: %w (make runtime)", err)
	}
	for _, d := range ents {
		dst := filepath.Join(to, d.Name())
		if _, err := os.Lstat(dst); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join(from, d.Name()), dst); err != nil {
			return err
		}
	}
	return nil
}

// slotArtifact is what a build in the oci format holds that a delta needs.
type slotArtifact struct {
	slot      string // the slot squashfs blob
	slotSize  int64
	index     []byte // the chunk index blob
	bootFiles int64  // kernel + initramfs, which the agent fetches whole
	artifact  int64  // every blob of the artifact: what a full download is
	kernel    string // the kernel's and initramfs' digests
	initrd    string
}

// openArtifact reads the OCI layout res.Image a build wrote.
func openArtifact(res *build.Result) (*slotArtifact, error) {
	dir := res.Image
	blob := func(d artifact.Descriptor) string {
		return filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(d.Digest, "sha256:"))
	}
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return nil, err
	}
	ix, err := artifact.ParseIndex(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if len(ix.Manifests) != 1 {
		return nil, fmt.Errorf("%s: %d manifests, want 1", dir, len(ix.Manifests))
	}
	if b, err = os.ReadFile(blob(ix.Manifests[0])); err != nil {
		return nil, err
	}
	u, err := artifact.ParseUpdate(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if u.Chunks == nil {
		return nil, fmt.Errorf("%s: the artifact has no chunk index", dir)
	}
	a := &slotArtifact{slot: blob(u.Slot), slotSize: u.Slot.Size, bootFiles: u.Kernel.Size + u.Initrd.Size, kernel: u.Kernel.Digest, initrd: u.Initrd.Digest,
		artifact: int64(len(b)) + u.Manifest.Config.Size}
	for _, l := range u.Manifest.Layers {
		a.artifact += l.Size
	}
	if a.index, err = os.ReadFile(blob(*u.Chunks)); err != nil {
		return nil, err
	}
	return a, nil
}

// deltaFigure is what a node holding from's slot fetches to install to's.
type deltaFigure struct {
	slot, index, fetch int64 // to's slot and chunk index, the slot bytes fetched
	ranges             int
	bootFiles          int64
	artifact           int64 // the whole artifact (manifest, config, layers)
	same               bool  // the boot files are byte-identical
}

// measureDelta plans to's slot against from's, as the agent does against
// its running slot (chunk.Plan with the local slot chunked on the spot).
func measureDelta(from, to *build.Result) (*deltaFigure, error) {
	a, err := openArtifact(from)
	if err != nil {
		return nil, err
	}
	b, err := openArtifact(to)
	if err != nil {
		return nil, err
	}
	want, err := chunk.Parse(b.index, b.slotSize)
	if err != nil {
		return nil, err
	}
	have, err := os.Open(a.slot)
	if err != nil {
		return nil, err
	}
	defer have.Close()
	d, err := chunk.Plan(want, have, nil)
	if err != nil {
		return nil, err
	}
	same := a.kernel == b.kernel && a.initrd == b.initrd
	return &deltaFigure{slot: b.slotSize, index: int64(len(b.index)), fetch: d.FetchBytes, ranges: len(d.Ranges), bootFiles: b.bootFiles, artifact: b.artifact, same: same}, nil
}

// row reports the slot's delta against the slot, the figure the layout
// decides, and the whole upgrade against the whole artifact: today's agent
// also fetches the kernel and initramfs whole, changed or not.
func (f *deltaFigure) row(board, what string) {
	slot := f.fetch + f.index
	all := slot + f.bootFiles
	boot := "unchanged"
	if !f.same {
		boot = "changed"
	}
	row(board+": delta download, "+what+": slot fetched / slot squashfs; with the boot files / whole artifact",
		"**%.2f MiB of %.1f MiB (%.1f %%)**: chunks %.2f MiB in %d ranges + chunk index %.2f MiB; with the kernel and initramfs (%.1f MiB, %s, fetched whole) %.1f MiB of %.1f MiB (%.0f %%)",
		mib(slot), mib(f.slot), 100*float64(slot)/float64(f.slot), mib(f.fetch), f.ranges, mib(f.index),
		mib(f.bootFiles), boot, mib(all), mib(f.artifact), 100*float64(all)/float64(f.artifact))
}

// benchDelta builds pairs of update artifacts for board whose second
// differs from the first by one changed source line, and reports what a
// node holding the first fetches for the second: (a) the minimal image
// with cairn-agent rebuilt (a longer and a same-length log message), (b)
// with kube, a Kubernetes image whose baked test service changed.
func benchDelta(env *testimage.Env, tmp, board, arch, runtimeDir string, kube bool) error {
	if env.Cache == "" {
		env.Cache = filepath.Join(tmp, "cache")
	}
	dir := filepath.Join(tmp, "delta-"+board)
	image := func(e *testimage.Env, name string, kubeImage bool) (*build.Result, error) {
		if kubeImage {
			return e.KubeImage(board, arch, filepath.Join(dir, name))
		}
		return e.Minimal(board, filepath.Join(dir, name))
	}
	base, err := deltaEnv(env, filepath.Join(dir, "base"), arch, runtimeDir, nil)
	if err != nil {
		return err
	}
	v1, err := image(base, "base-minimal", false)
	if err != nil {
		return err
	}
	for _, c := range []struct {
		name, what string
		change     lineChange
	}{
		{"longer", "minimal image, cairn-agent with one log message 5 bytes longer", agentLine},
		{"same-length", "minimal image, cairn-agent with one log message reworded at the same length", agentSameLine},
	} {
		e, err := deltaEnv(env, filepath.Join(dir, "agent-"+c.name), arch, runtimeDir, &c.change)
		if err != nil {
			return err
		}
		v2, err := image(e, "minimal-"+c.name, false)
		if err != nil {
			return err
		}
		f, err := measureDelta(v1, v2)
		if err != nil {
			return err
		}
		f.row(board, c.what)
	}
	if !kube {
		return nil
	}
	k1, err := image(base, "base-kube", true)
	if err != nil {
		return err
	}
	hello := *base
	if hello.Overlay, err = helloLine.overlay(base.Root, filepath.Join(dir, "hello-src")); err != nil {
		return err
	}
	k2, err := image(&hello, "hello-kube", true)
	if err != nil {
		return err
	}
	f, err := measureDelta(k1, k2)
	if err != nil {
		return err
	}
	f.row(board, "Kubernetes image, the baked test service (cairn.test/hello) with one printed line changed")
	return nil
}

// benchDeltas runs benchDelta for qemu-x86_64 when it is among the boards
// (the figures are about the layout, which arm64 shares); the Kubernetes
// pair needs cairn-kube among the runtime binaries.
func benchDeltas(env *testimage.Env, tmp string, o options) error {
	const board, arch = "qemu-x86_64", "amd64"
	if !slices.Contains(o.boards, board) {
		return nil
	}
	_, err := os.Stat(filepath.Join(o.runtimeDir, "linux-"+arch, "cairn-kube"))
	kube := err == nil
	if !kube && !o.deltaOnly {
		return fmt.Errorf("no cairn-kube for %s in %s (make kube)", arch, o.runtimeDir)
	}
	if !kube {
		fmt.Fprintf(os.Stderr, "cairn-bench: no cairn-kube in %s: the Kubernetes delta is skipped (make kube-amd64)\n", o.runtimeDir)
	}
	return benchDelta(env, tmp, board, arch, o.runtimeDir, kube)
}
