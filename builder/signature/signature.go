// Package signature attaches signatures to pushed update artifacts, in
// the forms both cosign v2 and cosign v3 verify (`cosign verify --key
// cairn.pub --insecure-ignore-tlog REF`) and the agent checks
// (agent/update/sign):
//
//   - cosign v2's simple signing: a layer of the manifest tagged
//     sha256-<hex>.sig, its signature in an annotation;
//   - cosign v3's Sigstore bundle: a manifest whose subject is the
//     artifact, listed in the referrers fallback tag sha256-<hex> (or by
//     the registry's referrers API where it has one).
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
	"time"

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
// next to it in both forms. An earlier signature by the same key is
// replaced; signatures by other keys are kept. opts reach the registry
// (auth, transport); the context is Attach's own.
func Attach(ctx context.Context, ref name.Digest, key *ecdsa.PrivateKey, opts ...remote.Option) error {
	opts = append(opts, remote.WithContext(ctx))
	if err := attachSimpleSigning(ref, key, opts); err != nil {
		return fmt.Errorf("signature of %s (cosign v2 form): %w", ref, err)
	}
	if err := attachBundle(ref, key, opts); err != nil {
		return fmt.Errorf("signature of %s (cosign v3 form): %w", ref, err)
	}
	return nil
}

// attachSimpleSigning writes the sha256-<hex>.sig manifest: the layers
// already there that key did not make, and a new one.
func attachSimpleSigning(ref name.Digest, key *ecdsa.PrivateKey, opts []remote.Option) error {
	payload := sign.SimpleSigning(ref.Context().Name(), ref.DigestStr())
	sig, err := sign.Sign(key, payload)
	if err != nil {
		return err
	}
	tag := ref.Context().Tag(sign.SignatureTag(ref.DigestStr()))
	adds, err := othersSignatures(tag, &key.PublicKey, opts)
	if err != nil {
		return err
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
	return remote.Write(tag, img, opts...)
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

// attachBundle pushes a referrer manifest holding a Sigstore bundle, as
// cosign v3 does; go-containerregistry adds it to the fallback tag when
// the registry has no referrers API.
func attachBundle(ref name.Digest, key *ecdsa.PrivateKey, opts []remote.Option) error {
	subject, err := remote.Head(ref, opts...)
	if err != nil {
		return fmt.Errorf("reading the signed manifest: %w", err)
	}
	b, err := sign.SignBundle(key, ref.Context().Name(), ref.DigestStr())
	if err != nil {
		return err
	}
	layer := static.NewLayer(b, sign.BundleMediaType)
	config := static.NewLayer([]byte("{}"), types.OCIEmptyJSON)
	for _, l := range []v1.Layer{config, layer} {
		if err := remote.WriteLayer(ref.Context(), l, opts...); err != nil {
			return err
		}
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  sign.BundleMediaType,
		Config:        descriptor(config),
		Layers:        []v1.Descriptor{descriptor(layer)},
		Subject:       &v1.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size},
		Annotations: map[string]string{
			"dev.sigstore.bundle.content":       "dsse-envelope",
			"dev.sigstore.bundle.predicateType": sign.CosignSignPredicateType,
			"org.opencontainers.image.created":  time.Now().UTC().Format(time.RFC3339),
		},
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	d, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return err
	}
	return remote.Put(ref.Context().Digest(d.String()), rawManifest(raw), opts...)
}

func descriptor(l v1.Layer) v1.Descriptor {
	d, _ := l.Digest() // static layers: in memory, cannot fail
	n, _ := l.Size()
	mt, _ := l.MediaType()
	return v1.Descriptor{MediaType: mt, Digest: d, Size: n}
}

// rawManifest is an OCI manifest to put as it is.
type rawManifest []byte

func (m rawManifest) RawManifest() ([]byte, error)        { return m, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

func isNotFound(err error) bool {
	var te *transport.Error
	return err != nil && errors.As(err, &te) && te.StatusCode == 404
}
