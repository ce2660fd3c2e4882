// Package signature attaches signatures to pushed update artifacts in the
// form both cosign v2 and cosign v3 verify (`cosign verify --key
// cairn.pub --insecure-ignore-tlog REF`) and the agent checks
// (agent/update/sign): cosign v2's simple signing, a layer of the manifest
// tagged sha256-<hex>.sig with its signature in an annotation.
//
// Why not also cosign v3's Sigstore bundle (a referrer of the artifact)?
// Without a bundle, cosign v3 verify reads the .sig as cosign v2 does. With
// one, both look only at bundles: cosign v2.6 then wants a Sigstore
// trusted root that it cannot fetch offline and fails, whatever the .sig
// says. A bundle of ours would break cosign v2 for every artifact. (If a
// user adds a bundle with cosign v3 sign, our .sig is still read by
// `cosign verify --new-bundle-format=false` of v3, and by the agent.)
// interop_test.go checks all of this with the real clients.
//
// The formats live in agent/update/sign; this package only talks to the
// registry.
package signature

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cairn-edge/cairn/agent/update/sign"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Attach signs the manifest ref names with key and pushes the signature
// next to it. An earlier signature by the same key is replaced;
// signatures by other keys are kept. opts reach the registry (auth,
// transport).
func Attach(ctx context.Context, ref name.Digest, key *ecdsa.PrivateKey, opts ...remote.Option) error {
	opts = append(opts, remote.WithContext(ctx))
	payload := sign.SimpleSigning(ref.Context().Name(), ref.DigestStr())
	sig, err := sign.Sign(key, payload)
	if err != nil {
		return err
	}
	tag := ref.Context().Tag(sign.SignatureTag(ref.DigestStr()))
	adds, err := othersSignatures(tag, &key.PublicKey, opts)
	if err != nil {
		return fmt.Errorf("signing %s: %w", ref, err)
	}
	adds = append(adds, mutate.Addendum{
		Layer:       static.NewLayer(payload, sign.SimpleSigningMediaType),
		Annotations: map[string]string{sign.SignatureAnnotation: sig},
	})
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.Append(base, adds...)
	if err != nil {
		return err
	}
	if err := remote.Write(tag, img, opts...); err != nil {
		return fmt.Errorf("pushing the signature of %s to %s: %w", ref, tag, err)
	}
	return nil
}

// othersSignatures returns the simple-signing layers under tag that pub
// does not verify, to keep them; none if the tag is absent.
func othersSignatures(tag name.Tag, pub *ecdsa.PublicKey, opts []remote.Option) ([]mutate.Addendum, error) {
	img, err := remote.Image(tag, opts...)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading existing signatures: %w", err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("reading existing signatures: %w", err)
	}
	var adds []mutate.Addendum
	for _, d := range m.Layers {
		if d.MediaType != sign.SimpleSigningMediaType {
			continue
		}
		l, err := img.LayerByDigest(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("reading existing signature %s: %w", d.Digest, err)
		}
		payload, err := readLayer(l)
		if err != nil {
			return nil, fmt.Errorf("reading existing signature %s: %w", d.Digest, err)
		}
		sig := d.Annotations[sign.SignatureAnnotation]
		if sign.VerifySimpleSigning(payload, sig, payloadDigest(payload), []*ecdsa.PublicKey{pub}) == nil {
			continue // ours: replaced by the new one
		}
		adds = append(adds, mutate.Addendum{Layer: static.NewLayer(payload, d.MediaType), Annotations: d.Annotations})
	}
	return adds, nil
}

// payloadDigest returns the digest a simple-signing payload names, so a
// payload of ours for any digest is recognised as ours.
func payloadDigest(payload []byte) string {
	var p struct {
		Critical struct {
			Image struct {
				Digest string `json:"docker-manifest-digest"`
			} `json:"image"`
		} `json:"critical"`
	}
	_ = json.Unmarshal(payload, &p)
	return p.Critical.Image.Digest
}

func readLayer(l v1.Layer) ([]byte, error) {
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(rc)
	return b.Bytes(), err
}

func isNotFound(err error) bool {
	var te *transport.Error
	return err != nil && errors.As(err, &te) && te.StatusCode == 404
}
