package flash

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/cairn-edge/cairn/builder/bmap"
	"github.com/cairn-edge/cairn/builder/compress"
)

// Image is a disk image to flash: a raw .img, or one compressed as
// .img.zst or .img.xz, with its block map when it has one.
type Image struct {
	// Path is the image file.
	Path string
	// Compression is its compression, from its name.
	Compression compress.Format
	// BmapPath is the block map in use, or "" for none: then the whole
	// image is written.
	BmapPath string
	// Map is the parsed block map, nil without one.
	Map *bmap.Map
	// Size is the size of the raw image.
	Size int64
}

// ImageOptions say which block map to use.
type ImageOptions struct {
	// Bmap is the block map's path; empty looks beside the image (see
	// BmapCandidates).
	Bmap string
	// NoBmap writes the whole image even when a block map is beside it.
	NoBmap bool
}

// BmapCandidates are the block maps looked for beside image: for
// x.img, x.img.bmap and x.bmap; for x.img.zst (or .xz) the same names of
// the raw image x.img. cairn build writes x.bmap.
func BmapCandidates(image string) []string {
	raw := strings.TrimSuffix(image, compress.Detect(image).Ext())
	c := []string{raw + ".bmap"}
	if base, ok := strings.CutSuffix(raw, ".img"); ok {
		c = append(c, base+".bmap")
	}
	return c
}

// OpenImage checks the image at path and finds, reads and checks its
// block map. The raw image's size is the file's, or, compressed, the
// block map's; a compressed image without a map is decompressed once to
// learn it (so a card too small is refused before anything is written).
func OpenImage(path string, opt ImageOptions) (*Image, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("image %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("image %s is not a file (name an .img, .img.zst or .img.xz file)", path)
	}
	im := &Image{Path: path, Compression: compress.Detect(path), Size: st.Size()}
	if !opt.NoBmap {
		im.BmapPath = opt.Bmap
		if im.BmapPath == "" {
			for _, c := range BmapCandidates(path) {
				if _, err := os.Stat(c); err == nil {
					im.BmapPath = c
					break
				}
			}
		}
	}
	if im.BmapPath != "" {
		data, err := readLimited(im.BmapPath, bmap.MaxFile)
		if err != nil {
			return nil, fmt.Errorf("block map %w", err)
		}
		m, err := bmap.Parse(data)
		if err != nil {
			return nil, fmt.Errorf("block map %s: %w (or pass --no-bmap to write the whole image)", im.BmapPath, err)
		}
		im.Map = &m
		if im.Compression == compress.None && m.ImageSize != st.Size() {
			return nil, fmt.Errorf("image %s is %d bytes, its block map %s says %d: they are not of the same build (pass the right --bmap, or --no-bmap)", path, st.Size(), im.BmapPath, m.ImageSize)
		}
		im.Size = m.ImageSize
		return im, nil
	}
	if im.Compression != compress.None {
		slog.Info("no block map beside the image: decompressing it once to learn its size", "image", path, "looked for", strings.Join(BmapCandidates(path), ", "))
		r, err := im.open()
		if err != nil {
			return nil, err
		}
		defer r.Close()
		if im.Size, err = io.Copy(io.Discard, r); err != nil {
			return nil, fmt.Errorf("image %s: %w (is the download complete?)", path, err)
		}
	}
	return im, nil
}

// readLimited reads a file of at most max bytes.
func readLimited(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, max)
	}
	return b, nil
}

// source is the raw image, read in order; skip passes over bytes
// without them being needed (a hole of a raw image is not read at all).
type source interface {
	io.ReadCloser
	skip(n int64) error
}

// open returns the raw image's bytes from the start.
func (im *Image) open() (source, error) {
	f, err := os.Open(im.Path)
	if err != nil {
		return nil, fmt.Errorf("image %w", err)
	}
	if im.Compression == compress.None {
		return rawSource{f}, nil
	}
	r, err := compress.NewReader(f, im.Compression)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("image %s: %w", im.Path, err)
	}
	return &streamSource{r: r, f: f}, nil
}

type rawSource struct{ *os.File }

func (s rawSource) skip(n int64) error {
	_, err := s.Seek(n, io.SeekCurrent)
	return err
}

type streamSource struct {
	r       io.ReadCloser
	f       *os.File
	scratch []byte
}

func (s *streamSource) Read(b []byte) (int, error) { return s.r.Read(b) }

// skip decompresses n bytes into a large scratch buffer: io.Discard's
// small reads cost more than the decompression of a hole's zeros.
func (s *streamSource) skip(n int64) error {
	if s.scratch == nil {
		s.scratch = make([]byte, 1<<20)
	}
	for left := n; left > 0; {
		k, err := io.ReadFull(s.r, s.scratch[:min(left, int64(len(s.scratch)))])
		left -= int64(k)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("the image ends %d bytes early: %w", left, io.ErrUnexpectedEOF)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *streamSource) Close() error {
	return errors.Join(s.r.Close(), s.f.Close())
}
