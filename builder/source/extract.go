package source

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// TreeMarker is the file Tree writes at the top of a finished tree; it is
// not part of the input.
const TreeMarker = ".complete"

// Tree unpacks an input's flattened file system into the cache once and
// returns the directory holding it. Later calls for the same digest return
// at once: that is what makes warm builds fast.
func (c *Cache) Tree(in *Input) (string, error) {
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
	if err := untar(rc, tmp); err != nil {
		return "", fmt.Errorf("input %s: unpacking: %w", in.Ref.Raw, err)
	}
	if err := os.WriteFile(filepath.Join(tmp, TreeMarker), nil, 0o644); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	os.RemoveAll(dir) // a partial tree from an interrupted run
	if err := os.Rename(tmp, dir); err != nil {
		return "", fmt.Errorf("cache: %w", err)
	}
	slog.Info("unpacked input", "ref", in.Ref.Raw, "took", time.Since(start).Round(time.Millisecond))
	return dir, nil
}

// untar writes regular files, directories, symlinks and hard links from r
// under dir, refusing entries that would land outside it.
func untar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		rel := filepath.Clean(strings.TrimPrefix(h.Name, "/"))
		if rel == "." {
			continue
		}
		if rel == ".." || strings.HasPrefix(rel, "../") {
			return fmt.Errorf("entry %q points outside the image", h.Name)
		}
		dst := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		mode := os.FileMode(h.Mode) & os.ModePerm
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, mode|0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode|0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			os.Remove(dst)
			if err := os.Symlink(h.Linkname, dst); err != nil {
				return err
			}
		case tar.TypeLink:
			src := filepath.Join(dir, filepath.Clean(strings.TrimPrefix(h.Linkname, "/")))
			if !strings.HasPrefix(src, dir+string(filepath.Separator)) {
				return fmt.Errorf("hard link %q points outside the image", h.Name)
			}
			os.Remove(dst)
			if err := os.Link(src, dst); err != nil {
				return err
			}
		}
	}
}
