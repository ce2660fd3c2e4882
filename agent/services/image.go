package services

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
)

// labelLayout marks an image with the digest of the index.json it was
// imported from, so an unchanged layout is not imported again.
const labelLayout = "io.cairn.layout.index"

// layoutIndexDigest returns the sha256 of dir's index.json, or an error that
// says dir is no OCI layout.
func layoutIndexDigest(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return "", fmt.Errorf("image layout %s: %w (the slot should hold an OCI layout directory per service)", dir, err)
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// ImportImage makes the OCI layout in dir available as image name (in the
// namespace of ctx), unpacked into snapshotter. It does nothing when the
// image already came from the same layout and is unpacked, so every boot
// after the first is cheap and none needs the network.
func ImportImage(ctx context.Context, c *containerd.Client, name, dir, snapshotter string) (containerd.Image, error) {
	want, err := layoutIndexDigest(dir)
	if err != nil {
		return nil, err
	}
	if img, err := c.GetImage(ctx, name); err == nil && img.Labels()[labelLayout] == want {
		if ok, err := img.IsUnpacked(ctx, snapshotter); err == nil && ok {
			return img, nil
		}
	} else if err != nil && !errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("image %s: %w", name, err)
	}

	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tarDir(pw, dir)) }()
	imgs, err := c.Import(ctx, pr,
		containerd.WithIndexName(name),
		containerd.WithImageLabels(map[string]string{labelLayout: want}),
		// Name only the index: no extra images from ref.name annotations
		// or digests.
		containerd.WithImageRefTranslator(func(string) string { return "" }),
	)
	pr.CloseWithError(io.ErrClosedPipe)
	if err != nil {
		return nil, fmt.Errorf("import image %s from %s: %w", name, dir, err)
	}
	if len(imgs) == 0 {
		return nil, fmt.Errorf("import image %s from %s: no image in the layout", name, dir)
	}
	img := containerd.NewImage(c, imgs[0])
	if err := img.Unpack(ctx, snapshotter); err != nil {
		return nil, fmt.Errorf("unpack image %s (from %s) into %s: %w (does the layout hold this machine's platform?)", name, dir, snapshotter, err)
	}
	return img, nil
}

// tarDir writes dir's regular files and directories as a tar stream, the
// form containerd's importer reads an OCI layout in.
func tarDir(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() && !fi.IsDir() {
			return nil
		}
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.IsDir() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
