// Package source resolves the builder's inputs — kernel, boot loader and
// other components packed as OCI images — to digests, and keeps them in a
// local cache addressed by digest, so a build reads the network at most once
// per input and a digest-pinned build needs no network at all.
//
// A reference is one of:
//
//	registry.example/kernel:6.1          an image in a registry (tag or @sha256:…)
//	oci-layout:DIR[:TAG][@sha256:HEX]    an image in an OCI layout directory
//	tarball:FILE[:TAG]                   an image in a `docker save`-style tarball
//
// Relative DIR and FILE paths are resolved against the folder of the file
// that names them.
package source

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Kind says where a reference points.
type Kind int

// The kinds of reference.
const (
	Registry Kind = iota
	Layout
	Tarball
)

// Reference is a parsed input reference.
type Reference struct {
	// Raw is the reference as written.
	Raw  string
	Kind Kind
	// Path is the layout directory or tarball file (Layout, Tarball).
	Path string
	// Tag names the image inside a layout or tarball; empty means the only one.
	Tag string
	// Digest pins the image; zero means not pinned.
	Digest v1.Hash
	// Name is the registry reference (Registry).
	Name name.Reference
}

// Pinned tells whether the reference names a digest.
func (r Reference) Pinned() bool { return r.Digest.Hex != "" }

// Parse reads a reference; relative paths are resolved against dir.
func Parse(raw, dir string) (Reference, error) {
	r := Reference{Raw: raw}
	if strings.TrimSpace(raw) == "" {
		return r, fmt.Errorf("empty reference: give a registry image, oci-layout:DIR[:TAG] or tarball:FILE")
	}
	scheme, rest, hasScheme := strings.Cut(raw, ":")
	switch {
	case hasScheme && scheme == "oci-layout":
		r.Kind = Layout
	case hasScheme && scheme == "tarball":
		r.Kind = Tarball
	default:
		ref, err := name.ParseReference(raw, name.StrictValidation)
		if err != nil {
			return r, fmt.Errorf("reference %q is malformed: %v (write registry/repo:tag, registry/repo@sha256:…, oci-layout:DIR:TAG or tarball:FILE)", raw, err)
		}
		r.Kind, r.Name = Registry, ref
		if d, ok := ref.(name.Digest); ok {
			r.Digest, _ = v1.NewHash(d.DigestStr())
		}
		return r, nil
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		h, err := v1.NewHash(rest[at+1:])
		if err != nil {
			return r, fmt.Errorf("reference %q has a malformed digest: %v (write @sha256: and 64 hex digits)", raw, err)
		}
		r.Digest, rest = h, rest[:at]
	}
	// A tag follows the last colon after the last slash: DIR:TAG.
	if c := strings.LastIndex(rest, ":"); c > strings.LastIndex(rest, "/") {
		r.Tag, rest = rest[c+1:], rest[:c]
		if r.Tag == "" {
			return r, fmt.Errorf("reference %q has an empty tag after the colon", raw)
		}
	}
	if rest == "" {
		return r, fmt.Errorf("reference %q names no path: write %s:DIR[:TAG]", raw, scheme)
	}
	if !filepath.IsAbs(rest) {
		rest = filepath.Join(dir, rest)
	}
	r.Path = rest
	return r, nil
}

// String is the reference as written.
func (r Reference) String() string { return r.Raw }
