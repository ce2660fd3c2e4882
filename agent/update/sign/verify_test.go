package sign

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent/update/artifact"
)

// fakeRegistry holds manifests by reference and blobs by digest.
type fakeRegistry struct {
	manifests map[string][]byte
	blobs     map[string][]byte
	referrers []byte // the referrers API's answer; nil: no API
	err       error  // returned for every manifest, when set
}

func newFake() *fakeRegistry {
	return &fakeRegistry{manifests: map[string][]byte{}, blobs: map[string][]byte{}}
}

func (f *fakeRegistry) Manifest(_ context.Context, repo, ref string) (string, []byte, error) {
	if f.err != nil {
		return "", nil, f.err
	}
	b, ok := f.manifests[ref]
	if !ok {
		return "", nil, fmt.Errorf("manifest %s:%s: %w", repo, ref, ErrNotFound)
	}
	return artifact.ManifestMediaType, b, nil
}

func (f *fakeRegistry) Blob(_ context.Context, repo, digest string, max int64) ([]byte, error) {
	b, ok := f.blobs[digest]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", digest, ErrNotFound)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("blob %s is larger than %d", digest, max)
	}
	return b, nil
}

// withReferrers is a fakeRegistry that also has the referrers API.
type withReferrers struct{ *fakeRegistry }

func (f withReferrers) Referrers(_ context.Context, repo, digest string) ([]byte, error) {
	if f.referrers == nil {
		return nil, ErrNotFound
	}
	return f.referrers, nil
}

func digestOf(b []byte) string {
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:])
}

func (f *fakeRegistry) blob(b []byte) artifact.Descriptor {
	d := digestOf(b)
	f.blobs[d] = b
	return artifact.Descriptor{Digest: d, Size: int64(len(b))}
}

// addSimpleSigning stores a .sig manifest for subject with one layer per payload/signature pair.
func (f *fakeRegistry) addSimpleSigning(subject string, pairs ...string) {
	m := artifact.Manifest{SchemaVersion: 2, MediaType: artifact.ManifestMediaType}
	for i := 0; i < len(pairs); i += 2 {
		l := f.blob([]byte(pairs[i]))
		l.MediaType = SimpleSigningMediaType
		l.Annotations = map[string]string{SignatureAnnotation: pairs[i+1]}
		m.Layers = append(m.Layers, l)
	}
	b, _ := json.Marshal(m)
	f.manifests[SignatureTag(subject)] = b
}

// addBundle stores a referrer manifest holding bundle and returns its descriptor.
func (f *fakeRegistry) addBundle(subject string, bundle []byte) artifact.Descriptor {
	l := f.blob(bundle)
	l.MediaType = BundleMediaType
	m := artifact.Manifest{SchemaVersion: 2, MediaType: artifact.ManifestMediaType, ArtifactType: BundleMediaType,
		Layers: []artifact.Descriptor{l}, Subject: &artifact.Descriptor{Digest: subject}}
	b, _ := json.Marshal(m)
	d := digestOf(b)
	f.manifests[d] = b
	return artifact.Descriptor{MediaType: artifact.ManifestMediaType, Digest: d, Size: int64(len(b)), ArtifactType: BundleMediaType}
}

func index(ds ...artifact.Descriptor) []byte {
	b, _ := json.Marshal(artifact.Index{SchemaVersion: 2, MediaType: artifact.IndexMediaType, Manifests: ds})
	return b
}

func TestVerify(t *testing.T) {
	key, other := mustKey(t), mustKey(t)
	keys := []*ecdsa.PublicKey{&key.PublicKey}
	payload := string(SimpleSigning("r.example/x", digestA))
	bundle := dsseBundle(t, key, InTotoPayloadType, statementFor(digestA, CosignSignPredicateType))
	otherBundle := dsseBundle(t, other, InTotoPayloadType, statementFor(digestA, CosignSignPredicateType))

	for _, tc := range []struct {
		name     string
		setup    func(f *fakeRegistry) Registry
		wantForm Form
		wantErr  error  // a sentinel, or nil
		wantText string // in the error
	}{
		{"simple signing", func(f *fakeRegistry) Registry {
			f.addSimpleSigning(digestA, payload, mustSign(t, key, []byte(payload)))
			return f
		}, FormSimpleSigning, nil, ""},
		{"second layer is ours", func(f *fakeRegistry) Registry {
			f.addSimpleSigning(digestA, payload, mustSign(t, other, []byte(payload)), payload+" ", mustSign(t, key, []byte(payload+" ")))
			return f
		}, FormSimpleSigning, nil, ""},
		{"bundle in fallback tag", func(f *fakeRegistry) Registry {
			f.manifests[ReferrersTag(digestA)] = index(f.addBundle(digestA, bundle))
			return f
		}, FormBundle, nil, ""},
		{"bundle through referrers API", func(f *fakeRegistry) Registry {
			f.referrers = index(f.addBundle(digestA, bundle))
			return withReferrers{f}
		}, FormBundle, nil, ""},
		{"bad v2, good v3", func(f *fakeRegistry) Registry {
			f.addSimpleSigning(digestA, payload, mustSign(t, other, []byte(payload)))
			f.manifests[ReferrersTag(digestA)] = index(f.addBundle(digestA, bundle))
			return f
		}, FormBundle, nil, ""},
		{"nothing", func(f *fakeRegistry) Registry { return f }, "", ErrUnsigned, "sign it with cairn push --key"},
		{"only other referrers", func(f *fakeRegistry) Registry {
			d := f.addBundle(digestA, bundle)
			d.ArtifactType = "application/spdx+json"
			f.manifests[ReferrersTag(digestA)] = index(d)
			return f
		}, "", ErrUnsigned, ""},
		{"other key", func(f *fakeRegistry) Registry {
			f.addSimpleSigning(digestA, payload, mustSign(t, other, []byte(payload)))
			f.manifests[ReferrersTag(digestA)] = index(f.addBundle(digestA, otherBundle))
			return f
		}, "", ErrBadSignature, "2 signature(s)"},
		{"tampered payload", func(f *fakeRegistry) Registry {
			f.addSimpleSigning(digestA, strings.Replace(payload, "r.example", "evil.example", 1), mustSign(t, key, []byte(payload)))
			return f
		}, "", ErrBadSignature, "payload was changed"},
		{"signature of another artifact", func(f *fakeRegistry) Registry {
			// B's valid signature copied under A's tag.
			pb := string(SimpleSigning("r.example/x", digestB))
			f.addSimpleSigning(digestA, pb, mustSign(t, key, []byte(pb)))
			return f
		}, "", ErrBadSignature, "copied from another artifact"},
		{"referrer of another subject", func(f *fakeRegistry) Registry {
			f.manifests[ReferrersTag(digestA)] = index(f.addBundle(digestB, bundle))
			return f
		}, "", ErrUnsigned, ""},
		{"missing blob", func(f *fakeRegistry) Registry {
			f.addSimpleSigning(digestA, payload, mustSign(t, key, []byte(payload)))
			clear(f.blobs)
			return f
		}, "", ErrBadSignature, "not found"},
		{"registry down", func(f *fakeRegistry) Registry {
			f.err = errors.New("dial tcp: connection refused")
			return f
		}, "", nil, "connection refused"},
		{"garbage index", func(f *fakeRegistry) Registry {
			f.manifests[ReferrersTag(digestA)] = []byte("<html>")
			return f
		}, "", ErrBadSignature, "not JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Verify(context.Background(), tc.setup(newFake()), "x", digestA, keys)
			if tc.wantForm != "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if res.Form != tc.wantForm || res.Key != Fingerprint(&key.PublicKey) {
					t.Fatalf("Verify = %+v, want form %q by key %s", res, tc.wantForm, Fingerprint(&key.PublicKey))
				}
				return
			}
			if err == nil {
				t.Fatalf("Verify = %+v, want an error", res)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("Verify error %q does not wrap %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && (errors.Is(err, ErrUnsigned) || errors.Is(err, ErrBadSignature)) {
				t.Fatalf("registry error %q reported as a signature problem", err)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Fatalf("Verify error %q, want it to contain %q", err, tc.wantText)
			}
		})
	}
}

func TestVerifyArguments(t *testing.T) {
	key := mustKey(t)
	if _, err := Verify(context.Background(), newFake(), "x", "latest", []*ecdsa.PublicKey{&key.PublicKey}); err == nil || !strings.Contains(err.Error(), "not sha256") {
		t.Fatalf("bad digest: %v", err)
	}
	if _, err := Verify(context.Background(), newFake(), "x", digestA, nil); err == nil || !strings.Contains(err.Error(), "update.keys") {
		t.Fatalf("no keys: %v", err)
	}
}

func TestTags(t *testing.T) {
	if got, want := SignatureTag(digestA), "sha256-"+digestA[7:]+".sig"; got != want {
		t.Fatalf("SignatureTag = %q, want %q", got, want)
	}
	if got, want := ReferrersTag(digestA), "sha256-"+digestA[7:]; got != want {
		t.Fatalf("ReferrersTag = %q, want %q", got, want)
	}
}
