package source

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// epoch stamps every packed file and config: packing is reproducible.
var epoch = time.Unix(0, 0).UTC()

// PackOption sets something of the image PackDir makes besides its files.
type PackOption func(*v1.Config)

// WithEntrypoint sets the image config's Entrypoint: the program and its
// first arguments a container of the image runs. CRI refuses to run an
// image (a pod sandbox in particular) whose config has neither Entrypoint
// nor Cmd.
func WithEntrypoint(args ...string) PackOption {
	return func(c *v1.Config) { c.Entrypoint = append([]string(nil), args...) }
}

// WithCmd sets the image config's Cmd: the arguments after Entrypoint (or
// the whole command line when there is no Entrypoint), which a container
// may replace.
func WithCmd(args ...string) PackOption {
	return func(c *v1.Config) { c.Cmd = append([]string(nil), args...) }
}

// PackDir packs a directory tree into a single-layer linux/arch OCI image and
// stores it in the OCI layout layoutDir under tag, replacing an older image
// of that tag (and deleting the blobs only that image used). The same tree
// and options always give the same digest.
func PackDir(dir, arch, layoutDir, tag string, opts ...PackOption) (v1.Hash, error) {
	var buf bytes.Buffer
	if err := tarDir(dir, &buf); err != nil {
		return v1.Hash{}, fmt.Errorf("packing %s: %w", dir, err)
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithCompressionLevel(gzip.BestSpeed), tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return v1.Hash{}, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, MediaType: types.OCILayer})
	if err != nil {
		return v1.Hash{}, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return v1.Hash{}, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Created = "linux", arch, v1.Time{Time: epoch}
	for _, o := range opts {
		o(&cfg.Config)
	}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return v1.Hash{}, err
	}
	p, err := layout.FromPath(layoutDir)
	if err != nil {
		if p, err = layout.Write(layoutDir, empty.Index); err != nil {
			return v1.Hash{}, fmt.Errorf("layout %s: %w", layoutDir, err)
		}
	}
	old, err := taggedBlobs(p, tag)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("layout %s: %w", layoutDir, err)
	}
	if err := p.ReplaceImage(img, match.Annotation(ociRefName, tag), layout.WithAnnotations(map[string]string{ociRefName: tag})); err != nil {
		return v1.Hash{}, fmt.Errorf("layout %s: %w", layoutDir, err)
	}
	if err := removeUnused(p, old); err != nil {
		return v1.Hash{}, fmt.Errorf("layout %s: %w", layoutDir, err)
	}
	return img.Digest()
}

// taggedBlobs lists the blobs (manifest, config, layers) of the images
// tagged tag in the layout p.
func taggedBlobs(p layout.Path, tag string) ([]v1.Hash, error) {
	im, err := indexManifest(p)
	if err != nil {
		return nil, err
	}
	var out []v1.Hash
	for _, d := range im.Manifests {
		if d.Annotations[ociRefName] != tag {
			continue
		}
		hs, err := descriptorBlobs(p, d)
		if err != nil {
			return nil, err
		}
		out = append(out, hs...)
	}
	return out, nil
}

// removeUnused deletes those of the blobs that nothing in the layout's
// index refers to any more, so that repacking leaves no garbage behind.
func removeUnused(p layout.Path, blobs []v1.Hash) error {
	if len(blobs) == 0 {
		return nil
	}
	im, err := indexManifest(p)
	if err != nil {
		return err
	}
	used := map[v1.Hash]bool{}
	for _, d := range im.Manifests {
		hs, err := descriptorBlobs(p, d)
		if err != nil {
			return err
		}
		for _, h := range hs {
			used[h] = true
		}
	}
	for _, h := range blobs {
		if !used[h] {
			if err := p.RemoveBlob(h); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

func indexManifest(p layout.Path) (*v1.IndexManifest, error) {
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, err
	}
	return idx.IndexManifest()
}

// descriptorBlobs lists the blob d names and every blob below it: an image's
// config and layers, an index's children.
func descriptorBlobs(p layout.Path, d v1.Descriptor) ([]v1.Hash, error) {
	out := []v1.Hash{d.Digest}
	switch {
	case d.MediaType.IsImage():
		img, err := p.Image(d.Digest)
		if err != nil {
			return nil, err
		}
		m, err := img.Manifest()
		if err != nil {
			return nil, err
		}
		out = append(out, m.Config.Digest)
		for _, l := range m.Layers {
			out = append(out, l.Digest)
		}
	case d.MediaType.IsIndex():
		idx, err := p.ImageIndex()
		if err != nil {
			return nil, err
		}
		child, err := idx.ImageIndex(d.Digest)
		if err != nil {
			return nil, err
		}
		im, err := child.IndexManifest()
		if err != nil {
			return nil, err
		}
		for _, c := range im.Manifests {
			hs, err := descriptorBlobs(p, c)
			if err != nil {
				return nil, err
			}
			out = append(out, hs...)
		}
	}
	return out, nil
}

// tarDir writes dir as a tar stream with sorted entries, root ownership and
// fixed timestamps.
func tarDir(dir string, w io.Writer) error {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	tw := tar.NewWriter(w)
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&os.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		h.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			h.Name += "/"
		}
		h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
		h.ModTime, h.AccessTime, h.ChangeTime = epoch, time.Time{}, time.Time{}
		h.Format = tar.FormatPAX
		h.PAXRecords = nil
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return err
			}
		}
	}
	return tw.Close()
}
