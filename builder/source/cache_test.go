package source

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cairn-edge/cairn/builder/rootfs"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// packed makes a small amd64 image in a layout and returns the layout.
func packed(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "boot"), 0o755)
	os.WriteFile(filepath.Join(dir, "boot", "vmlinuz"), []byte("kernel"), 0o644)
	lay := filepath.Join(t.TempDir(), "oci")
	h, err := PackDir(dir, "amd64", lay, "k")
	if err != nil {
		t.Fatal(err)
	}
	return lay, h.String()
}

// TestResolveRegistry pulls from a real registry (go-containerregistry's, on
// loopback), then resolves the digest-pinned reference again with the
// registry gone: the cache answers, no network needed.
func TestResolveRegistry(t *testing.T) {
	lay, digest := packed(t)
	p, _ := layout.FromPath(lay)
	idx, _ := p.ImageIndex()
	im, _ := idx.IndexManifest()
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registry.New())
	host := strings.TrimPrefix(srv.URL, "http://")
	tag, _ := name.NewTag(host + "/cairn/kernel:6.1")
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	cache, err := OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ref, _ := Parse(host+"/cairn/kernel:6.1", "")
	in, err := cache.Resolve(ctx, ref, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	if in.Digest.String() != digest {
		t.Fatalf("resolved %s, want %s", in.Digest, digest)
	}
	tree, err := cache.Tree(in)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := tree.ReadFile("boot/vmlinuz"); string(b) != "kernel" {
		t.Errorf("unpacked vmlinuz = %q", b)
	}

	srv.Close()
	pinned, _ := Parse(host+"/cairn/kernel@"+digest, "")
	if _, err := cache.Resolve(ctx, pinned, "amd64"); err != nil {
		t.Fatalf("pinned reference with the registry down: %v (the cache should answer)", err)
	}
	if _, err := cache.Resolve(ctx, ref, "amd64"); err == nil || !strings.Contains(err.Error(), "cannot be fetched") {
		t.Fatalf("tag with the registry down: %v", err)
	}
	if _, err := cache.Resolve(ctx, pinned, "arm64"); err == nil || !strings.Contains(err.Error(), "is built for amd64, but the board is arm64") {
		t.Fatalf("wrong arch: %v", err)
	}
}

func TestResolveTarball(t *testing.T) {
	lay, digest := packed(t)
	p, _ := layout.FromPath(lay)
	idx, _ := p.ImageIndex()
	im, _ := idx.IndexManifest()
	img, _ := idx.Image(im.Manifests[0].Digest)
	file := filepath.Join(t.TempDir(), "kernel.tar")
	tag, _ := name.NewTag("kernel:6.1")
	if err := tarball.WriteToFile(file, tag, img); err != nil {
		t.Fatal(err)
	}
	cache, _ := OpenCache(t.TempDir())
	ref, _ := Parse("tarball:"+file, "")
	in, err := cache.Resolve(context.Background(), ref, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	// A docker-save tarball stores the config and layers, not the OCI
	// manifest bytes, so its digest is its own; the content is the same.
	if in.Digest.String() == "" {
		t.Fatalf("no digest (packed as %s)", digest)
	}
	bad, _ := Parse("tarball:"+filepath.Join(t.TempDir(), "none.tar"), "")
	if _, err := cache.Resolve(context.Background(), bad, "amd64"); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("missing tarball: %v", err)
	}
}

func TestPackDirReproducible(t *testing.T) {
	_, a := packed(t)
	_, b := packed(t)
	if a != b {
		t.Errorf("packing the same tree twice gave %s and %s", a, b)
	}
}

func TestPackDirConfig(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "pause"), []byte("#!fake"), 0o755)
	tests := []struct {
		name            string
		opts            []PackOption
		entrypoint, cmd []string
	}{
		{"none", nil, nil, nil},
		{"entrypoint", []PackOption{WithEntrypoint("/pause")}, []string{"/pause"}, nil},
		{"entrypoint and cmd", []PackOption{WithEntrypoint("/coredns", "-conf"), WithCmd("/etc/Corefile", "a b,c")}, []string{"/coredns", "-conf"}, []string{"/etc/Corefile", "a b,c"}},
		{"cmd only", []PackOption{WithCmd("/pause")}, nil, []string{"/pause"}},
	}
	digests := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lay := filepath.Join(t.TempDir(), "oci")
			var hs [2]string
			for i := range hs {
				h, err := PackDir(dir, "arm64", lay, "x", tt.opts...)
				if err != nil {
					t.Fatal(err)
				}
				hs[i] = h.String()
			}
			if hs[0] != hs[1] {
				t.Errorf("packing twice gave %s and %s", hs[0], hs[1])
			}
			for other, d := range digests {
				if d == hs[0] {
					t.Errorf("same digest as %q: the config is not in the image", other)
				}
			}
			digests[tt.name] = hs[0]
			ref, _ := Parse("oci-layout:"+lay+":x", "")
			in, err := mustCache(t).Resolve(context.Background(), ref, "arm64")
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := in.Image.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cfg.Config.Entrypoint, tt.entrypoint) || !slices.Equal(cfg.Config.Cmd, tt.cmd) {
				t.Errorf("Entrypoint %q Cmd %q, want %q %q", cfg.Config.Entrypoint, cfg.Config.Cmd, tt.entrypoint, tt.cmd)
			}
			if cfg.Architecture != "arm64" || cfg.OS != "linux" {
				t.Errorf("platform %s/%s", cfg.OS, cfg.Architecture)
			}
		})
	}
}

// TestPackDirReplaces repacks a tag: the layout keeps one image of that tag
// and no blob of the old one, and other tags keep theirs.
func TestPackDirReplaces(t *testing.T) {
	lay := filepath.Join(t.TempDir(), "oci")
	dir := t.TempDir()
	write := func(content string) {
		os.WriteFile(filepath.Join(dir, "f"), []byte(content), 0o644)
	}
	write("other")
	if _, err := PackDir(dir, "amd64", lay, "other"); err != nil {
		t.Fatal(err)
	}
	blobs := func() int {
		es, _ := os.ReadDir(filepath.Join(lay, "blobs", "sha256"))
		return len(es)
	}
	base := blobs()
	write("one")
	if _, err := PackDir(dir, "amd64", lay, "x"); err != nil {
		t.Fatal(err)
	}
	write("two")
	if _, err := PackDir(dir, "amd64", lay, "x", WithEntrypoint("/f")); err != nil {
		t.Fatal(err)
	}
	if got, want := blobs(), 2*base; got != want {
		t.Errorf("%d blobs after repacking, want %d (manifest, config, layer per image)", got, want)
	}
	p, _ := layout.FromPath(lay)
	idx, _ := p.ImageIndex()
	im, _ := idx.IndexManifest()
	if len(im.Manifests) != 2 {
		t.Fatalf("%d images in the layout, want 2", len(im.Manifests))
	}
	for _, d := range im.Manifests {
		img, err := p.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		ls, _ := img.Layers()
		for _, l := range ls {
			if _, err := l.Compressed(); err != nil {
				t.Errorf("image %s lost a layer: %v", d.Annotations[ociRefName], err)
			}
		}
	}
}

func mustCache(t *testing.T) *Cache {
	t.Helper()
	c, err := OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCacheShared: builds sharing one cache at once (each its own Cache,
// as separate cairn processes have) each resolve and unpack their inputs,
// some the same: every image is in the index afterwards and every tree is
// whole.
func TestCacheShared(t *testing.T) {
	src := t.TempDir()
	lay := filepath.Join(t.TempDir(), "oci")
	const images = 8
	for i := range images {
		dir := filepath.Join(src, fmt.Sprint(i))
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "file"), []byte(strings.Repeat(fmt.Sprint(i), 1<<16)), 0o644)
		if _, err := PackDir(dir, "amd64", lay, fmt.Sprintf("img%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	shared := t.TempDir()
	var wg sync.WaitGroup
	errs := make(chan error, 2*images)
	for range 2 {
		for i := range images {
			wg.Go(func() {
				c, err := OpenCache(shared)
				if err == nil {
					var ref Reference
					if ref, err = Parse(fmt.Sprintf("oci-layout:%s:img%d", lay, i), ""); err == nil {
						var in *Input
						if in, err = c.Resolve(context.Background(), ref, "amd64"); err == nil {
							var tree *rootfs.Tree
							if tree, err = c.Tree(in); err == nil {
								var b []byte
								if b, err = os.ReadFile(filepath.Join(tree.Dir(), "file")); err == nil && len(b) != 1<<16 {
									err = fmt.Errorf("img%d: tree's file has %d bytes", i, len(b))
								}
							}
						}
					}
				}
				errs <- err
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	p, err := layout.FromPath(filepath.Join(shared, "oci"))
	if err != nil {
		t.Fatal(err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	digests := map[string]bool{}
	for _, d := range im.Manifests {
		digests[d.Digest.String()] = true
	}
	if len(digests) != images {
		t.Errorf("the shared cache's index holds %d images, want %d", len(digests), images)
	}
}
