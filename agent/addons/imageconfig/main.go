// Command imageconfig sets the entrypoint of an image stored in an OCI
// layout under a tag, in place (same tag, new config and manifest digests;
// the layers stay). images.sh runs it after `cairn input pack`, which
// writes images without an entrypoint: CRI refuses a sandbox image whose
// config has neither Entrypoint nor Cmd. Drop this command once `cairn
// input pack` can set the entrypoint itself.
//
//	go run ./agent/addons/imageconfig -layout DIR -tag TAG -entrypoint /pause
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// refName is the annotation that tags an image in an OCI layout's index.
const refName = "org.opencontainers.image.ref.name"

func main() {
	dir := flag.String("layout", "", "OCI layout directory")
	tag := flag.String("tag", "", "tag of the image in the layout")
	entry := flag.String("entrypoint", "", "entrypoint: the program and its arguments, separated by spaces")
	flag.Parse()
	if err := run(*dir, *tag, strings.Fields(*entry)); err != nil {
		fmt.Fprintf(os.Stderr, "imageconfig: %v\n", err)
		os.Exit(1)
	}
}

func run(dir, tag string, entrypoint []string) error {
	if dir == "" || tag == "" || len(entrypoint) == 0 {
		return errors.New("needs -layout, -tag and -entrypoint")
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		return fmt.Errorf("layout %s: %w", dir, err)
	}
	img, err := image(p, tag)
	if err != nil {
		return fmt.Errorf("layout %s: %w", dir, err)
	}
	old, err := blobs(img)
	if err != nil {
		return fmt.Errorf("layout %s: image %s: %w", dir, tag, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("layout %s: image %s: %w", dir, tag, err)
	}
	c := cfg.Config
	c.Entrypoint, c.Cmd = entrypoint, nil
	if img, err = mutate.Config(img, c); err != nil {
		return err
	}
	m := match.Annotation(refName, tag)
	if err := p.ReplaceImage(img, m, layout.WithAnnotations(map[string]string{refName: tag})); err != nil {
		return err
	}
	return removeUnused(p, old)
}

// blobs returns the digests of img's manifest and config (its layers stay
// in use by the new image).
func blobs(img v1.Image) ([]v1.Hash, error) {
	m, err := img.Digest()
	if err != nil {
		return nil, err
	}
	c, err := img.ConfigName()
	if err != nil {
		return nil, err
	}
	return []v1.Hash{m, c}, nil
}

// removeUnused deletes those of the blobs that no image in the layout
// refers to any more, so rewriting an image leaves no garbage behind.
func removeUnused(p layout.Path, hashes []v1.Hash) error {
	idx, err := p.ImageIndex()
	if err != nil {
		return err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	used := map[v1.Hash]bool{}
	for _, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			return err
		}
		hs, err := blobs(img)
		if err != nil {
			return err
		}
		for _, h := range hs {
			used[h] = true
		}
	}
	for _, h := range hashes {
		if !used[h] {
			if err := p.RemoveBlob(h); err != nil {
				return err
			}
		}
	}
	return nil
}

// image returns the one image tagged tag in the layout p.
func image(p layout.Path, tag string) (v1.Image, error) {
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, d := range im.Manifests {
		if d.Annotations[refName] == tag {
			return idx.Image(d.Digest)
		}
	}
	return nil, fmt.Errorf("no image tagged %q (pack it first)", tag)
}
