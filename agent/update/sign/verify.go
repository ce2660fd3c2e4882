package sign

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/cairn-edge/cairn/agent/update/artifact"
)

// Registry is what signature discovery needs of a registry.
type Registry interface {
	// Manifest fetches a manifest or index by tag or digest: its media
	// type and bytes (ErrNotFound wrapped when absent).
	Manifest(ctx context.Context, repo, reference string) (mediaType string, body []byte, err error)
	// Blob fetches a small blob whole, checking its digest.
	Blob(ctx context.Context, repo, digest string, max int64) ([]byte, error)
}

// ReferrersRegistry is a Registry that can also ask the OCI referrers API
// (GET /v2/<repo>/referrers/<digest>). Verify uses it when r has it, and
// the fallback tag in any case (registries without the API, like
// distribution 2.8, only have the tag).
type ReferrersRegistry interface {
	Registry
	// Referrers returns the referrers index of digest (ErrNotFound wrapped
	// when the registry has no referrers API).
	Referrers(ctx context.Context, repo, digest string) ([]byte, error)
}

// Errors of Verify, for errors.Is.
var (
	// ErrNotFound is what a Registry wraps when a manifest is absent.
	ErrNotFound = errors.New("not found")
	// ErrUnsigned is wrapped when the registry holds no signature of the
	// artifact at all.
	ErrUnsigned = errors.New("unsigned")
)

// Form is the form of a signature.
type Form string

// The forms Verify accepts.
const (
	// FormSimpleSigning is cosign v2's: a payload layer under sha256-<hex>.sig.
	FormSimpleSigning Form = "cosign simple signing"
	// FormBundle is cosign v3's: a Sigstore bundle referring to the artifact.
	FormBundle Form = "sigstore bundle"
)

// Result is the signature that verified.
type Result struct {
	// Form is the signature's form.
	Form Form
	// Key is the Fingerprint of the trusted key that made it.
	Key string
	// Manifest is the signature's own manifest: the .sig tag or the
	// referrer's digest.
	Manifest string
}

// maxCandidates bounds the signatures of one form Verify tries, so a
// registry listing thousands cannot keep it busy.
const maxCandidates = 16

// emptyMediaType is OCI's empty config, which a bundle's manifest has.
const emptyMediaType = "application/vnd.oci.empty.v1+json"

// SignatureTag is the tag cosign v2 stores the signatures of digest under.
func SignatureTag(digest string) string {
	return strings.Replace(digest, ":", "-", 1) + ".sig"
}

// ReferrersTag is the OCI referrers fallback tag of digest.
func ReferrersTag(digest string) string {
	return strings.Replace(digest, ":", "-", 1)
}

// Verify looks in repo for a signature of manifestDigest by one of keys,
// in either form, and returns the first that verifies. With no signature
// at all the error wraps ErrUnsigned; with signatures none of which
// verifies it wraps ErrBadSignature and says why each failed. Registry
// errors other than ErrNotFound are returned as they are, unless another
// signature verified.
func Verify(ctx context.Context, r Registry, repo, manifestDigest string, keys []*ecdsa.PublicKey) (Result, error) {
	if _, err := digestHex(manifestDigest); err != nil {
		return Result{}, err
	}
	if len(keys) == 0 {
		return Result{}, errors.New("no trusted keys to verify a signature with (set the spec's update.keys)")
	}
	v := &verifier{r: r, repo: repo, digest: manifestDigest, keys: keys}
	if res, ok := v.simpleSigning(ctx); ok {
		return res, nil
	}
	if res, ok := v.bundles(ctx); ok {
		return res, nil
	}
	switch {
	case v.fail != nil:
		return Result{}, fmt.Errorf("looking for signatures of %s in %s: %w", manifestDigest, repo, v.fail)
	case len(v.bad) > 0:
		return Result{}, fmt.Errorf("%w: %d signature(s) of %s in %s, none valid: %s", ErrBadSignature, len(v.bad), manifestDigest, repo, strings.Join(v.bad, "; "))
	}
	return Result{}, fmt.Errorf("%w: no signature of %s in %s (looked for tags %s and %s): sign it with cairn push --key or cosign sign --key, or allow unsigned artifacts in the spec", ErrUnsigned, manifestDigest, repo, SignatureTag(manifestDigest), ReferrersTag(manifestDigest))
}

// verifier collects what Verify saw.
type verifier struct {
	r      Registry
	repo   string
	digest string
	keys   []*ecdsa.PublicKey
	bad    []string // why each signature found was refused
	fail   error    // the first registry error
}

// manifest returns a manifest, or nil when absent or on a registry error
// (kept in v.fail).
func (v *verifier) manifest(ctx context.Context, ref string) *artifact.Manifest {
	_, b, err := v.r.Manifest(ctx, v.repo, ref)
	if err != nil {
		v.failed(err)
		return nil
	}
	var m artifact.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		v.bad = append(v.bad, fmt.Sprintf("signature manifest %s is not JSON: %v", trunc(ref), err))
		return nil
	}
	return &m
}

func (v *verifier) failed(err error) {
	if !errors.Is(err, ErrNotFound) && v.fail == nil {
		v.fail = err
	}
}

// simpleSigning tries the layers of the sha256-<hex>.sig manifest.
func (v *verifier) simpleSigning(ctx context.Context) (Result, bool) {
	tag := SignatureTag(v.digest)
	m := v.manifest(ctx, tag)
	if m == nil {
		return Result{}, false
	}
	n := 0
	for _, l := range m.Layers {
		if l.MediaType != SimpleSigningMediaType || n == maxCandidates {
			continue
		}
		n++
		payload, err := v.r.Blob(ctx, v.repo, l.Digest, MaxPayloadSize)
		if err != nil {
			v.failed(err)
			v.bad = append(v.bad, fmt.Sprintf("%s layer %s: %v", tag, trunc(l.Digest), err))
			continue
		}
		key, err := verifySimpleSigning(payload, l.Annotations[SignatureAnnotation], v.digest, v.keys)
		if err != nil {
			v.bad = append(v.bad, fmt.Sprintf("%s layer %s: %v", tag, trunc(l.Digest), err))
			continue
		}
		return Result{Form: FormSimpleSigning, Key: Fingerprint(key), Manifest: tag}, true
	}
	return Result{}, false
}

// bundles tries the referrers of the artifact that hold a bundle.
func (v *verifier) bundles(ctx context.Context) (Result, bool) {
	var refs []artifact.Descriptor
	if rr, ok := v.r.(ReferrersRegistry); ok {
		if b, err := rr.Referrers(ctx, v.repo, v.digest); err != nil {
			v.failed(err)
		} else {
			refs = append(refs, v.index("referrers API", b)...)
		}
	}
	tag := ReferrersTag(v.digest)
	if _, b, err := v.r.Manifest(ctx, v.repo, tag); err != nil {
		v.failed(err)
	} else {
		refs = append(refs, v.index("tag "+tag, b)...)
	}
	seen := map[string]bool{}
	for _, d := range refs {
		if seen[d.Digest] || len(seen) == maxCandidates {
			continue
		}
		seen[d.Digest] = true
		if res, ok := v.bundle(ctx, d.Digest); ok {
			return res, true
		}
	}
	return Result{}, false
}

// index returns the entries of a referrers index that may hold a bundle.
func (v *verifier) index(where string, b []byte) []artifact.Descriptor {
	var ix artifact.Index
	if err := json.Unmarshal(b, &ix); err != nil {
		v.bad = append(v.bad, fmt.Sprintf("referrers index (%s) is not JSON: %v", where, err))
		return nil
	}
	var out []artifact.Descriptor
	for _, d := range ix.Manifests {
		// Registries that predate artifactType list the config's media
		// type instead (OCI's empty one for a bundle), or nothing: look
		// inside those too.
		switch d.ArtifactType {
		case BundleMediaType, emptyMediaType, "":
		default:
			continue
		}
		if artifact.ValidDigest(d.Digest) {
			out = append(out, d)
		}
	}
	return out
}

// bundle tries the bundle layers of one referrer manifest.
func (v *verifier) bundle(ctx context.Context, digest string) (Result, bool) {
	m := v.manifest(ctx, digest)
	if m == nil {
		return Result{}, false
	}
	if m.Subject == nil || m.Subject.Digest != v.digest {
		return Result{}, false // refers to something else: not a signature of ours
	}
	for _, l := range m.Layers {
		if l.MediaType != BundleMediaType {
			continue
		}
		b, err := v.r.Blob(ctx, v.repo, l.Digest, MaxBundleSize)
		if err != nil {
			v.failed(err)
			v.bad = append(v.bad, fmt.Sprintf("referrer %s: %v", trunc(digest), err))
			continue
		}
		key, err := verifyBundle(b, v.digest, v.keys)
		if err != nil {
			v.bad = append(v.bad, fmt.Sprintf("referrer %s: %v", trunc(digest), err))
			continue
		}
		return Result{Form: FormBundle, Key: Fingerprint(key), Manifest: digest}, true
	}
	return Result{}, false
}
