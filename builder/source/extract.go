package source

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/cairn-edge/cairn/builder/rootfs"
	"github.com/cairn-edge/cairn/builder/untar"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// TreeMarker is the file Tree writes at the top of a finished tree; it is
// not part of the input.
const TreeMarker = ".complete"

// Tree unpacks an input's flattened file system into the cache once and
// returns it, to be read inside it only: the tree keeps the input's links.
// Later calls for the same digest return at once: that is what makes warm
// builds fast.
func (c *Cache) Tree(in *Input) (*rootfs.Tree, error) {
	dir, err := c.unpack(in)
	if err != nil {
		return nil, err
	}
	return rootfs.New(dir), nil
}

// unpack is Tree, returning the tree's directory.
func (c *Cache) unpack(in *Input) (string, error) {
	dir := filepath.Join(c.dir, "trees", in.Digest.Hex)
	if _, err := os.Stat(filepath.Join(dir, TreeMarker)); err == nil {
		return dir, nil
	}
	start := time.Now()
	tmp, err := os.MkdirTemp(filepath.Join(c.dir), "tree-")
	if err != nil {
		if err := os.MkdirAll(filepath.Join(c.dir, "trees"), 0o755); err != nil {
			return "", fmt.Errorf("cache: %w", err)
		}
		if tmp, err = os.MkdirTemp(c.dir, "tree-"); err != nil {
			return "", fmt.Errorf("cache: %w", err)
		}
	}
	defer os.RemoveAll(tmp)
	rc := mutate.Extract(in.Image)
	defer rc.Close()
	if err := untar.Extract(rc, tmp); err != nil {
		return "", fmt.Errorf("input %s: unpacking: %w", in.Ref.Raw, err)
	}
	// The marker replaces whatever the input holds of that name: RemoveAll
	// does not follow a link, and O_EXCL does not open through one.
	marker := filepath.Join(tmp, TreeMarker)
	os.RemoveAll(marker)
	f, err := os.OpenFile(marker, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", fmt.Errorf("cache: %w", err)
	}
	f.Close()
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	// Another build sharing the cache may have unpacked the same input
	// meanwhile: its tree, complete (renamed with its marker), is as good.
	// A directory without the marker is none of ours: replaced.
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(filepath.Join(dir, TreeMarker)); serr == nil {
			return dir, nil
		}
		os.RemoveAll(dir)
		if err := os.Rename(tmp, dir); err != nil {
			return "", fmt.Errorf("cache: %w", err)
		}
	}
	slog.Info("unpacked input", "ref", in.Ref.Raw, "took", time.Since(start).Round(time.Millisecond))
	return dir, nil
}
