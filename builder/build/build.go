// Package build makes an image: it checks the output format, resolves the
// inputs (builder/plan.Resolve), plans what goes where (plan.Make), has the
// format's writer write it (builder/output) and records the input digests
// and the node API's client config beside it. A build is a pure function
// of its inputs, and it never leaves a partial image at the output path:
// everything is written to a temporary directory whose files are renamed
// into place at the end, the image last.
package build

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/builder/compress"
	"github.com/cairn-edge/cairn/builder/output"
	"github.com/cairn-edge/cairn/builder/pki"
	"github.com/cairn-edge/cairn/builder/plan"
	"github.com/cairn-edge/cairn/builder/source"
	"github.com/cairn-edge/cairn/builder/spec"
)

// DefaultEpoch stamps every file when SOURCE_DATE_EPOCH is not set
// (2024-01-01T00:00:00Z; FAT cannot store times before 1980).
const DefaultEpoch = 1704067200

// Options are a build's settings besides the spec and board.
type Options struct {
	// OutDir receives <spec>-<board>.img, .bmap, .inputs.json (and .img.zst
	// or .img.xz with Compress).
	OutDir string
	// Cache is the input cache.
	Cache *source.Cache
	// BinDir holds our binaries per architecture: BinDir/linux-<arch>/cairn-init.
	BinDir string
	// PKIDir keeps the node API's CA and identities; missing ones are made.
	// Builds from the same PKIDir are byte-identical; a new one makes new keys.
	PKIDir string
	// Format is the output format (output.Formats); empty means raw.
	Format string
	// Compress, when set, also writes the disk image compressed, as
	// <spec>-<board>.img.zst or .img.xz (builder/compress). The raw .img
	// and its .bmap are kept: the .bmap describes the raw image, which
	// bmaptool and cairn flash need for either file, and the raw image is
	// what cairn provision and QEMU take. Only the raw format has a disk
	// image to compress.
	Compress compress.Format
}

// Result describes a finished build.
type Result struct {
	Image, Bmap, Inputs string
	// Compressed is the compressed image (Options.Compress), or "".
	Compressed string
	// NodeConfig is the client config for `cairn node` (holds a private key).
	NodeConfig    string
	ImageSize     int64
	SlotSize      int64
	InitramfsSize int64
	MappedBytes   int64
	KernelVersion string
	Took          time.Duration
}

// Record is the content of <output>.inputs.json: what the build was made of.
type Record struct {
	Spec          string     `json:"spec"`
	Board         string     `json:"board"`
	Version       string     `json:"version"`
	KernelVersion string     `json:"kernelVersion"`
	Inputs        []plan.Pin `json:"inputs"`
}

// Epoch is the build's timestamp: SOURCE_DATE_EPOCH or DefaultEpoch.
func Epoch() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Unix(DefaultEpoch, 0).UTC(), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 315532800 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a Unix time after 1980 (unset it or give seconds since 1970)", s)
	}
	return time.Unix(n, 0).UTC(), nil
}

// Build makes the image.
func Build(ctx context.Context, img *spec.Image, opt Options) (*Result, error) {
	start := time.Now()
	format := cmp.Or(opt.Format, output.DefaultFormat)
	w, err := output.Lookup(format)
	if err != nil {
		return nil, err
	}
	if err := CheckCompress(format, opt.Compress); err != nil {
		return nil, err
	}
	epoch, err := Epoch()
	if err != nil {
		return nil, err
	}
	name := img.OutputName()
	log := slog.With("image", name)

	// Outputs go through temporary files in the output directory.
	if err := os.MkdirAll(opt.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("output directory %s cannot be created: %w (pass -o with a writable directory)", opt.OutDir, err)
	}
	work, err := os.MkdirTemp(opt.OutDir, "."+name+".build-")
	if err != nil {
		return nil, fmt.Errorf("output directory %s is not writable: %w (pass -o with a writable directory)", opt.OutDir, err)
	}
	defer os.RemoveAll(work)

	step := stepper(log)
	step("resolving inputs")
	in, err := plan.Resolve(ctx, opt.Cache, img, opt.BinDir)
	if err != nil {
		return nil, err
	}
	step("node API credentials")
	creds, err := pki.Ensure(opt.PKIDir, pki.Options{})
	if err != nil {
		return nil, fmt.Errorf("node API credentials in %s: %w", opt.PKIDir, err)
	}
	for _, f := range creds.Issued {
		log.Info("issued", "file", f, "dir", opt.PKIDir)
	}
	for _, w := range creds.Warnings {
		log.Warn("node API credentials", "warning", w)
	}
	step("planning")
	p, err := plan.Make(img, in, creds, epoch, work)
	if err != nil {
		return nil, err
	}
	step("writing " + format)
	files, err := w.Write(ctx, p, work)
	if err != nil {
		return nil, err
	}
	if opt.Compress != compress.None {
		step("compressing " + string(opt.Compress))
		if err := compressImage(ctx, files, opt.Compress); err != nil {
			return nil, err
		}
	}

	nodeTmp := filepath.Join(work, "node.yaml")
	if err := pki.WriteClientConfig(nodeTmp, fmt.Sprintf("https://%s:%d", pki.DefaultNodeName, api.DefaultPort), "", creds); err != nil {
		return nil, err
	}
	rec := Record{Spec: img.Spec.Name, Board: img.Board.Name, Version: img.Spec.Version, KernelVersion: p.KernelVersion, Inputs: p.Inputs}
	recJSON, _ := json.MarshalIndent(rec, "", "  ")
	recTmp := filepath.Join(work, "inputs.json")
	if err := os.WriteFile(recTmp, append(recJSON, '\n'), 0o644); err != nil {
		return nil, err
	}

	base := filepath.Join(opt.OutDir, name)
	res := &Result{
		Inputs:        base + ".inputs.json",
		NodeConfig:    base + ".node.yaml",
		ImageSize:     files.Size,
		SlotSize:      files.SlotSize,
		InitramfsSize: files.InitramfsSize,
		MappedBytes:   files.Mapped,
		KernelVersion: p.KernelVersion,
	}
	moves := [][2]string{{recTmp, res.Inputs}, {nodeTmp, res.NodeConfig}}
	for i := len(files.Files) - 1; i >= 0; i-- {
		f := files.Files[i]
		moves = append(moves, [2]string{f.Path, base + f.Ext})
		switch f.Ext {
		case ".bmap":
			res.Bmap = base + f.Ext
		case ".img" + opt.Compress.Ext():
			if opt.Compress != compress.None {
				res.Compressed = base + f.Ext
			}
		}
	}
	res.Image = base + files.Files[0].Ext
	// The output itself is renamed last: its presence means the build finished.
	for _, mv := range moves {
		if err := replace(mv[0], mv[1], work); err != nil {
			return nil, fmt.Errorf("output: %w", err)
		}
	}
	res.Took = time.Since(start)
	step("")
	log.Info("built", "image", res.Image, "size", res.ImageSize, "slot", res.SlotSize, "initramfs", res.InitramfsSize, "took", res.Took.Round(time.Millisecond))
	return res, nil
}

// CheckCompress refuses a compression Cairn does not write, or one of a
// format without a disk image; Build calls it before anything is built.
func CheckCompress(format string, c compress.Format) error {
	if _, err := compress.Parse(string(c)); err != nil {
		return err
	}
	if c != compress.None && format != "raw" {
		return fmt.Errorf("--compress %s applies to disk images: the %s format has none (use --format raw, or drop --compress)", c, format)
	}
	return nil
}

// compressImage adds the compressed copy of files' .img after it, so it
// is moved into place before the image itself.
func compressImage(ctx context.Context, files *output.Files, c compress.Format) error {
	i := slices.IndexFunc(files.Files, func(f output.File) bool { return f.Ext == ".img" })
	if i < 0 {
		return fmt.Errorf("--compress %s: the output has no disk image to compress", c)
	}
	dst := files.Files[i].Path + c.Ext()
	if err := compress.File(ctx, files.Files[i].Path, dst, c); err != nil {
		return err
	}
	files.Files = slices.Insert(files.Files, i+1, output.File{Path: dst, Ext: ".img" + c.Ext()})
	return nil
}

// replace renames src to dst. A file replaces a file atomically (rename);
// a directory (the oci format's layout) cannot replace a directory that
// way, so an existing dst is first moved aside into work, which the build
// removes: dst is then briefly absent, never a mix of two builds or half
// written, and a build cut in between leaves no output rather than a
// partial one.
func replace(src, dst, work string) error {
	err := os.Rename(src, dst)
	if err == nil {
		return nil
	}
	st, serr := os.Lstat(dst)
	if serr != nil {
		return err // dst is not in the way: the rename failed for another reason
	}
	srcSt, serr := os.Lstat(src)
	if serr != nil || (!st.IsDir() && !srcSt.IsDir()) {
		return err
	}
	old, terr := os.MkdirTemp(work, "replaced-")
	if terr != nil {
		return terr
	}
	if err := os.Rename(dst, filepath.Join(old, filepath.Base(dst))); err != nil {
		return fmt.Errorf("%s is in the way and cannot be moved aside: %w (remove it)", dst, err)
	}
	return os.Rename(src, dst)
}

// stepper logs the start of each build step with how long the previous one took.
func stepper(log *slog.Logger) func(string) {
	var name string
	var began time.Time
	return func(next string) {
		if name != "" {
			log.Info("step done", "step", name, "took", time.Since(began).Round(time.Millisecond))
		}
		name, began = next, time.Now()
		if next != "" {
			log.Info("step", "step", next)
		}
	}
}
