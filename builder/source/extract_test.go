package source

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// layer is a tar stream of hs; a regular file holds its own name.
func layer(t *testing.T, hs ...tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hs {
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(h.Name))
		}
		h.Mode |= 0o644
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(h.Name))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// layered is an input of the layers given lowest first.
func layered(t *testing.T, layers ...[]byte) *Input {
	t.Helper()
	img := empty.Image
	for _, b := range layers {
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return &Input{Ref: Reference{Raw: "oci-layout:layers"}, Digest: d, Image: img}
}

// TestTreeLayers unpacks two-layer inputs: the upper layer's whiteout hides
// a lower file and its hard link reaches a lower layer's file, which the
// flattened stream lists after the link; and an upper layer's symlink out
// of the tree, spelt "/lib" so that flattening does not hide the lower
// layer's lib/x, does not carry lib/x out of the tree; nor does the cache's
// own marker go through a link the input put in its place.
func TestTreeLayers(t *testing.T) {
	reg := func(name string) tar.Header { return tar.Header{Typeflag: tar.TypeReg, Name: name} }
	t.Run("whiteout and a hard link across layers", func(t *testing.T) {
		c, err := OpenCache(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		tree, err := c.unpack(layered(t,
			layer(t, reg("bin/busybox"), reg("etc/old"), reg("etc/keep")),
			layer(t, reg("etc/.wh.old"), tar.Header{Typeflag: tar.TypeLink, Name: "bin/sh", Linkname: "bin/busybox"}),
		))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(filepath.Join(tree, "etc/old")); err == nil {
			t.Error("etc/old is in the tree, want it whited out")
		}
		if b, err := os.ReadFile(filepath.Join(tree, "etc/keep")); err != nil || string(b) != "etc/keep" {
			t.Errorf("etc/keep = %q (%v)", b, err)
		}
		bb, _ := os.Lstat(filepath.Join(tree, "bin/busybox"))
		sh, err := os.Lstat(filepath.Join(tree, "bin/sh"))
		if err != nil || !os.SameFile(bb, sh) {
			t.Errorf("bin/sh is not a hard link to bin/busybox (%v)", err)
		}
	})
	t.Run("a symlink out of the tree in the upper layer", func(t *testing.T) {
		dir := t.TempDir()
		outside := filepath.Join(dir, "outside")
		os.Mkdir(outside, 0o755)
		c, err := OpenCache(filepath.Join(dir, "cache"))
		if err != nil {
			t.Fatal(err)
		}
		in := layered(t,
			layer(t, reg("lib/x")),
			layer(t, tar.Header{Typeflag: tar.TypeSymlink, Name: "/lib", Linkname: outside}),
		)
		_, err = c.unpack(in)
		want := `input oci-layout:layers: unpacking: entry "lib/x": its path goes through the symlink "lib" (-> ` + outside + `)`
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("error %v, want %s…", err, want)
		}
		if es, _ := os.ReadDir(outside); len(es) != 0 {
			t.Errorf("outside the tree: %v, want nothing", es)
		}
		if _, err := os.Stat(filepath.Join(c.Dir(), "trees", in.Digest.Hex)); err == nil {
			t.Error("the refused input left a tree in the cache")
		}
	})
	t.Run("an input's own "+TreeMarker+" symlinked to a host file", func(t *testing.T) {
		dir := t.TempDir()
		host := filepath.Join(dir, "host")
		if err := os.WriteFile(host, []byte("host file"), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := OpenCache(filepath.Join(dir, "cache"))
		if err != nil {
			t.Fatal(err)
		}
		tree, err := c.unpack(layered(t, layer(t, tar.Header{Typeflag: tar.TypeSymlink, Name: TreeMarker, Linkname: host})))
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(host); string(b) != "host file" {
			t.Errorf("host file now holds %q: the marker was written through the input's link", b)
		}
		if fi, err := os.Lstat(filepath.Join(tree, TreeMarker)); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("%s in the tree: %v (%v), want the cache's own empty file", TreeMarker, fi, err)
		}
	})
}
