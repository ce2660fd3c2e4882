package output

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cairn-edge/cairn/agent/update/artifact"
	"github.com/cairn-edge/cairn/agent/update/chunk"
	"github.com/cairn-edge/cairn/builder/disk"
	"github.com/cairn-edge/cairn/builder/firmware"
	"github.com/cairn-edge/cairn/builder/plan"
)

// Layer file names, the org.opencontainers.image.title of each layer: what
// `crane manifest` shows and what `oras pull` would name the files.
const (
	SlotTitle   = "slot.squashfs"
	KernelTitle = "vmlinuz"
	InitrdTitle = "initrd"
	ChunksTitle = "slot.chunks.json"
	// BootFilesTitle is the board files layer's (a Raspberry Pi's).
	BootFilesTitle = "boot-files.tar"
)

// AnnotationRefName names the artifact inside the layout (OCI image
// layout's tag): its version, so `skopeo copy oci:DIR:1.2.0` finds it.
const AnnotationRefName = "org.opencontainers.image.ref.name"

// OCI writes the OS update artifact that `cairn push` sends and the agent
// installs: an OCI image layout directory (<name>.oci: oci-layout,
// index.json, blobs/sha256/…) holding one manifest in the format of
// agent/update/artifact — the slot's squashfs stored as is, the kernel,
// the initramfs, the slot's chunk index and, for a board whose slots have
// a boot partition each (the Raspberry Pi), the board files as BOOT-A
// holds them (firmware, DTBs, overlays, config.txt: one tar) as layers,
// the config with the version, board, arch, kernel command line and the
// board files' listing, and the annotations version, title, created,
// board and arch. Every byte derives from the
// plan: created is the build epoch, so a rebuild of the same inputs is
// byte-identical and pushes nothing new.
type OCI struct{}

// Write implements Writer.
func (OCI) Write(ctx context.Context, p *plan.Plan, dir string) (*Files, error) {
	log := slog.With("image", p.Name)
	cfg := artifact.Config{
		Name:    p.Image.Spec.Name,
		Version: p.Image.Spec.Version,
		Board:   p.Image.Board.Name,
		Arch:    p.Image.Board.Arch,
		Kernel:  p.KernelVersion,
		// The plan's command line has no slot parameter: the boot loader
		// adds it per slot (agent/bootloader), on the node as in the build.
		Cmdline: append([]string{}, p.Boot.Cmdline...),
		Created: p.Epoch.UTC().Format(time.RFC3339),
	}
	// A board whose slots have a boot partition each: its files, as
	// BOOT-A holds them, travel as one layer the config lists.
	boardLayer, err := boardFiles(p, &cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.Name, err)
	}
	// Refused before the slot is written: the agent would refuse it later.
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", p.Name, err)
	}

	lay := &layout{dir: filepath.Join(dir, "layout")}
	if err := os.MkdirAll(lay.blobDir(), 0o755); err != nil {
		return nil, err
	}
	log.Info("step", "step", "writing slot and initramfs")
	r, err := render(p, dir)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// A node's slot partitions are the spec's disk.slotSize: a larger slot
	// is refused here, as the raw image refuses it, not on the node.
	for _, part := range p.Layout.Partitions {
		if part.Label == disk.LabelA && r.slotSize > part.Size {
			return nil, fmt.Errorf("%s: the slot image is %d MiB but the slot partition holds %d MiB: raise disk.slotSize in the image spec (nodes made from the old size keep it: reflash them)", p.Name, (r.slotSize+(1<<20)-1)>>20, part.Size>>20)
		}
	}

	log.Info("step", "step", "writing the artifact's blobs")
	slot, err := lay.moveFile(r.slot, artifact.SlotMediaType, SlotTitle)
	if err != nil {
		return nil, err
	}
	kernel, err := lay.copyFile(p.Boot.Kernel, artifact.KernelMediaType, KernelTitle)
	if err != nil {
		return nil, fmt.Errorf("%s: kernel: %w", p.Name, err)
	}
	initrd, err := lay.write(r.initrd, artifact.InitrdMediaType, InitrdTitle)
	if err != nil {
		return nil, err
	}
	log.Info("step", "step", "indexing the slot's chunks")
	b, err := lay.chunks(slot)
	if err != nil {
		return nil, fmt.Errorf("%s: chunk index of the slot: %w", p.Name, err)
	}
	chunks, err := lay.write(b, artifact.ChunksMediaType, ChunksTitle)
	if err != nil {
		return nil, err
	}
	layers := []artifact.Descriptor{slot, kernel, initrd, chunks}
	if boardLayer != nil {
		d, err := lay.write(boardLayer, artifact.BootFilesMediaType, BootFilesTitle)
		if err != nil {
			return nil, err
		}
		layers = append(layers, d)
	}

	cfgJSON, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	config, err := lay.write(cfgJSON, artifact.ConfigMediaType, "")
	if err != nil {
		return nil, err
	}
	annotations := map[string]string{
		artifact.AnnotationVersion: cfg.Version,
		artifact.AnnotationTitle:   cfg.Name,
		artifact.AnnotationCreated: cfg.Created,
		artifact.AnnotationBoard:   cfg.Board,
		artifact.AnnotationArch:    cfg.Arch,
	}
	m := artifact.Manifest{
		SchemaVersion: 2,
		MediaType:     artifact.ManifestMediaType,
		ArtifactType:  artifact.ArtifactType,
		Config:        config,
		Layers:        layers,
		Annotations:   annotations,
	}
	// Indented, so that `crane manifest` prints something a person reads.
	mJSON, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	// Self-check: what the agent will parse, parsed here first.
	u, err := artifact.ParseUpdate(mJSON)
	if err != nil {
		return nil, fmt.Errorf("%s: the artifact's manifest does not parse back (a bug in builder/output): %w", p.Name, err)
	}
	c, err := artifact.ParseConfig(cfgJSON)
	if err != nil {
		return nil, fmt.Errorf("%s: the artifact's config does not parse back (a bug in builder/output): %w", p.Name, err)
	}
	if err := artifact.Match(u, c); err != nil {
		return nil, fmt.Errorf("%s: the artifact's manifest and config disagree (a bug in builder/output): %w", p.Name, err)
	}
	manifest, err := lay.write(mJSON, artifact.ManifestMediaType, "")
	if err != nil {
		return nil, err
	}
	manifest.ArtifactType = artifact.ArtifactType
	manifest.Annotations = map[string]string{
		AnnotationRefName:        cfg.Version,
		artifact.AnnotationBoard: cfg.Board,
		artifact.AnnotationArch:  cfg.Arch,
	}
	if err := lay.finish(manifest); err != nil {
		return nil, err
	}
	size := config.Size + manifest.Size
	for _, l := range layers {
		size += l.Size
	}
	return &Files{
		Files:         []File{{Path: lay.dir, Ext: ".oci"}},
		Size:          size,
		Mapped:        size,
		SlotSize:      r.slotSize,
		InitramfsSize: int64(len(r.initrd)),
	}, nil
}

// boardFiles is the board files layer of p's board (nil if its firmware
// part has none, as an extlinux board without a device tree), and lists
// its files in cfg.
func boardFiles(p *plan.Plan, cfg *artifact.Config) ([]byte, error) {
	bf, ok := p.Firmware.(firmware.BoardFiler)
	if !ok {
		return nil, nil
	}
	files, err := bf.BoardFiles()
	if err != nil || len(files) == 0 {
		return nil, err
	}
	data := make([]artifact.BootFileData, len(files))
	for i, f := range files {
		data[i] = artifact.BootFileData{Name: f.Name, Data: f.Data}
	}
	var b bytes.Buffer
	if cfg.BootFiles, err = artifact.WriteBootFiles(&b, data); err != nil {
		return nil, fmt.Errorf("the board's files: %w", err)
	}
	return b.Bytes(), nil
}

// layout is an OCI image layout directory being written.
type layout struct {
	dir string
}

func (l *layout) blobDir() string { return filepath.Join(l.dir, "blobs", "sha256") }

func (l *layout) blob(hexDigest string) string { return filepath.Join(l.blobDir(), hexDigest) }

func descriptor(mediaType, title string, sum []byte, size int64) artifact.Descriptor {
	d := artifact.Descriptor{MediaType: mediaType, Digest: "sha256:" + hex.EncodeToString(sum), Size: size}
	if title != "" {
		d.Annotations = map[string]string{artifact.AnnotationTitle: title}
	}
	return d
}

// write stores b as a blob.
func (l *layout) write(b []byte, mediaType, title string) (artifact.Descriptor, error) {
	sum := sha256.Sum256(b)
	d := descriptor(mediaType, title, sum[:], int64(len(b)))
	return d, os.WriteFile(l.blob(hex.EncodeToString(sum[:])), b, 0o644)
}

// moveFile hashes the file at path and renames it into the blobs: the
// slot is stored as is, without a copy.
func (l *layout) moveFile(path, mediaType, title string) (artifact.Descriptor, error) {
	f, err := os.Open(path)
	if err != nil {
		return artifact.Descriptor{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return artifact.Descriptor{}, fmt.Errorf("%s: %w", path, err)
	}
	d := descriptor(mediaType, title, h.Sum(nil), n)
	if err := os.Chmod(path, 0o644); err != nil {
		return artifact.Descriptor{}, err
	}
	return d, os.Rename(path, l.blob(hex.EncodeToString(h.Sum(nil))))
}

// copyFile copies the file at path into the blobs, hashing as it goes.
func (l *layout) copyFile(path, mediaType, title string) (artifact.Descriptor, error) {
	src, err := os.Open(path)
	if err != nil {
		return artifact.Descriptor{}, err
	}
	defer src.Close()
	tmp, err := os.CreateTemp(l.blobDir(), ".copy-")
	if err != nil {
		return artifact.Descriptor{}, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), src)
	if err != nil {
		return artifact.Descriptor{}, fmt.Errorf("%s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return artifact.Descriptor{}, err
	}
	if err := tmp.Close(); err != nil {
		return artifact.Descriptor{}, err
	}
	d := descriptor(mediaType, title, h.Sum(nil), n)
	return d, os.Rename(tmp.Name(), l.blob(hex.EncodeToString(h.Sum(nil))))
}

// chunks is the chunk index (agent/update/chunk) of the blob d, as the
// chunk layer's bytes: the agent cuts its active slot the same way and
// fetches only the chunks it lacks.
func (l *layout) chunks(d artifact.Descriptor) ([]byte, error) {
	f, err := os.Open(l.blob(strings.TrimPrefix(d.Digest, "sha256:")))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ix, err := chunk.Build(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return nil, err
	}
	return ix.Marshal()
}

// finish writes index.json, naming the one manifest, and oci-layout.
func (l *layout) finish(manifest artifact.Descriptor) error {
	ix := artifact.Index{SchemaVersion: 2, MediaType: artifact.IndexMediaType, Manifests: []artifact.Descriptor{manifest}}
	b, err := json.MarshalIndent(ix, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(l.dir, "index.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(l.dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`+"\n"), 0o644)
}
