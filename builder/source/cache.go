package source

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"
)

// Cache holds resolved inputs by digest in an OCI layout (DIR/oci) and their
// unpacked file trees (DIR/trees/<hex>).
type Cache struct {
	dir    string
	layout layout.Path
}

// Input is a resolved input image.
type Input struct {
	// Ref is the reference it was resolved from.
	Ref Reference
	// Digest is the image manifest's digest.
	Digest v1.Hash
	// Image is the cached image.
	Image v1.Image
}

// OpenCache opens (creating it if needed) the cache in dir.
func OpenCache(dir string) (*Cache, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cache directory %s cannot be created: %w (pass --cache with a writable directory)", dir, err)
	}
	c := &Cache{dir: dir}
	// Under the lock: a build making the layout while another, which
	// found it already, rewrites its index.json would write over it.
	err := c.locked(unix.LOCK_EX, func() (err error) {
		if c.layout, err = layout.FromPath(filepath.Join(dir, "oci")); err != nil {
			c.layout, err = layout.Write(filepath.Join(dir, "oci"), empty.Index)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cache %s: %w", dir, err)
	}
	return c, nil
}

// Dir is the cache's directory.
func (c *Cache) Dir() string { return c.dir }

// Resolve finds the image a reference names for the given architecture,
// copies it into the cache unless it is there already, and returns it read
// from the cache. A digest-pinned reference already in the cache touches
// neither the network nor the source.
func (c *Cache) Resolve(ctx context.Context, ref Reference, arch string) (*Input, error) {
	if ref.Pinned() {
		if img, err := c.cached(ref.Digest); err == nil {
			slog.Debug("input from cache", "ref", ref.Raw, "digest", ref.Digest)
			return c.checked(ref, ref.Digest, img, arch)
		}
	}
	img, err := open(ctx, ref, arch)
	if err != nil {
		return nil, err
	}
	dig, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("input %s: %w", ref.Raw, err)
	}
	if ref.Pinned() && dig != ref.Digest {
		return nil, fmt.Errorf("input %s: digest mismatch: the source holds %s (pin the digest it really has, or fix the source)", ref.Raw, dig)
	}
	if cached, err := c.cached(dig); err == nil {
		slog.Debug("input from cache", "ref", ref.Raw, "digest", dig)
		return c.checked(ref, dig, cached, arch)
	}
	slog.Info("fetching input", "ref", ref.Raw, "digest", dig)
	if err := c.fetchLayers(ref, img); err != nil {
		return nil, err
	}
	var cached v1.Image
	err = c.locked(unix.LOCK_EX, func() error {
		if err := c.layout.ReplaceImage(img, match.Digests(dig)); err != nil {
			return fmt.Errorf("input %s: copying into the cache %s: %w", ref.Raw, c.dir, err)
		}
		if cached, err = c.layout.Image(dig); err != nil {
			return fmt.Errorf("input %s: reading back from the cache: %w", ref.Raw, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return c.checked(ref, dig, cached, arch)
}

// cached is the image of digest dig in the cache's layout.
func (c *Cache) cached(dig v1.Hash) (v1.Image, error) {
	var img v1.Image
	err := c.locked(unix.LOCK_SH, func() (err error) {
		img, err = c.layout.Image(dig)
		return err
	})
	return img, err
}

// locked runs f holding the cache's lock file (DIR/lock): exclusively to
// rewrite the layout's index.json, which go-containerregistry writes in
// place, shared to read it. So builds sharing a cache at once never read a
// half-written index or lose each other's entries.
func (c *Cache) locked(how int, f func() error) error {
	lf, err := os.OpenFile(filepath.Join(c.dir, "lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("cache %s: %w", c.dir, err)
	}
	defer lf.Close()
	for {
		err = unix.Flock(int(lf.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("cache %s: locking: %w", c.dir, err)
	}
	return f()
}

func (c *Cache) checked(ref Reference, dig v1.Hash, img v1.Image, arch string) (*Input, error) {
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("input %s: image config is unreadable: %w", ref.Raw, err)
	}
	if cfg.Architecture != "" && arch != "" && cfg.Architecture != arch {
		return nil, fmt.Errorf("input %s is built for %s, but the board is %s (use the %s image)", ref.Raw, cfg.Architecture, arch, arch)
	}
	return &Input{Ref: ref, Digest: dig, Image: img}, nil
}

// open reads the image a reference names, without caching.
func open(ctx context.Context, ref Reference, arch string) (v1.Image, error) {
	platform := v1.Platform{OS: "linux", Architecture: arch}
	switch ref.Kind {
	case Registry:
		desc, err := remote.Get(ref.Name, remote.WithContext(ctx), remote.WithPlatform(platform))
		if err != nil {
			return nil, fmt.Errorf("input %s cannot be fetched: %v (check the name and the network, or pin a digest that is already in the cache)", ref.Raw, err)
		}
		img, err := desc.Image()
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", ref.Raw, err)
		}
		return img, nil
	case Tarball:
		var tag *name.Tag
		if ref.Tag != "" {
			t, err := name.NewTag(ref.Tag)
			if err != nil {
				return nil, fmt.Errorf("input %s: tag %q is malformed: %v", ref.Raw, ref.Tag, err)
			}
			tag = &t
		}
		if _, err := os.Stat(ref.Path); err != nil {
			return nil, fmt.Errorf("input %s: %w (check the path; it is relative to the file that names it)", ref.Raw, err)
		}
		img, err := tarball.ImageFromPath(ref.Path, tag)
		if err != nil {
			return nil, fmt.Errorf("input %s is not a readable image tarball: %v", ref.Raw, err)
		}
		return img, nil
	default:
		return openLayout(ref, platform)
	}
}

func openLayout(ref Reference, platform v1.Platform) (v1.Image, error) {
	p, err := layout.FromPath(ref.Path)
	if err != nil {
		return nil, fmt.Errorf("input %s: %s is not an OCI layout directory: %v (build it first, e.g. `make inputs`)", ref.Raw, ref.Path, err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("input %s: %w", ref.Raw, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("input %s: index.json is malformed: %w", ref.Raw, err)
	}
	var found []v1.Descriptor
	for _, d := range im.Manifests {
		switch {
		case ref.Pinned() && d.Digest == ref.Digest,
			!ref.Pinned() && ref.Tag != "" && d.Annotations[ociRefName] == ref.Tag,
			!ref.Pinned() && ref.Tag == "":
			found = append(found, d)
		}
	}
	switch {
	case len(found) == 0 && ref.Pinned():
		return nil, fmt.Errorf("input %s: no image with digest %s in %s", ref.Raw, ref.Digest, ref.Path)
	case len(found) == 0:
		return nil, fmt.Errorf("input %s: no image tagged %q in %s (tags there: %v)", ref.Raw, ref.Tag, ref.Path, tags(im))
	case len(found) > 1:
		return nil, fmt.Errorf("input %s: %s holds %d images: name one with :TAG (tags there: %v)", ref.Raw, ref.Path, len(found), tags(im))
	}
	d := found[0]
	if d.MediaType.IsIndex() {
		child, err := idx.ImageIndex(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", ref.Raw, err)
		}
		return platformImage(ref, child, platform)
	}
	return idx.Image(d.Digest)
}

func platformImage(ref Reference, idx v1.ImageIndex, platform v1.Platform) (v1.Image, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("input %s: %w", ref.Raw, err)
	}
	for _, d := range im.Manifests {
		if d.Platform != nil && d.Platform.OS == platform.OS && d.Platform.Architecture == platform.Architecture {
			return idx.Image(d.Digest)
		}
	}
	return nil, fmt.Errorf("input %s has no image for %s/%s", ref.Raw, platform.OS, platform.Architecture)
}

const ociRefName = "org.opencontainers.image.ref.name"

func tags(im *v1.IndexManifest) []string {
	var out []string
	for _, d := range im.Manifests {
		if t := d.Annotations[ociRefName]; t != "" {
			out = append(out, t)
		}
	}
	return out
}

// fetchLayers copies the image's layers into the cache one by one, logging
// progress, so that a slow download shows it is alive. ReplaceImage then
// finds them present and writes only the config and manifest.
func (c *Cache) fetchLayers(ref Reference, img v1.Image) error {
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("input %s: %w", ref.Raw, err)
	}
	for i, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return fmt.Errorf("input %s: %w", ref.Raw, err)
		}
		size, _ := l.Size()
		rc, err := l.Compressed()
		if err != nil {
			return fmt.Errorf("input %s: layer %s: %w", ref.Raw, d, err)
		}
		pr := &progressReader{r: rc, total: size, name: fmt.Sprintf("%s layer %d/%d", ref.Raw, i+1, len(layers)), last: time.Now()}
		err = c.layout.WriteBlob(d, io.NopCloser(pr))
		rc.Close()
		if err != nil {
			return fmt.Errorf("input %s: layer %s: %w (check the network and run the build again; finished layers are kept)", ref.Raw, d, err)
		}
		pr.report(true)
	}
	return nil
}

// progressReader logs how much of a download has arrived, every 2 s at most.
type progressReader struct {
	r           io.Reader
	name        string
	total, done int64
	last        time.Time
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	p.report(false)
	return n, err
}

func (p *progressReader) report(final bool) {
	if !final && time.Since(p.last) < 2*time.Second {
		return
	}
	p.last = time.Now()
	slog.Info("download", "what", p.name, "MiB", fmt.Sprintf("%.1f/%.1f", float64(p.done)/(1<<20), float64(p.total)/(1<<20)))
}

// WriteLayout writes the input as an OCI layout directory holding just this
// image, named by its reference, as the node imports it at boot.
func (in *Input) WriteLayout(dir string) error {
	return in.WriteLayoutAs(dir, in.Ref.Raw)
}

// WriteLayoutAs writes the input as an OCI layout directory holding just
// this image, whose index entry carries name as its
// org.opencontainers.image.ref.name: the name the node imports it under
// (e.g. the image name pods use, not where the builder took it from).
func (in *Input) WriteLayoutAs(dir, name string) error {
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendImage(in.Image, layout.WithAnnotations(map[string]string{ociRefName: name})); err != nil {
		return err
	}
	// go-containerregistry writes blobs executable (0755): nothing here is a program.
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		return os.Chmod(p, 0o644)
	})
}
