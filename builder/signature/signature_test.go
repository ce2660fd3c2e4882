package signature

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"testing"

	"github.com/cairn-edge/cairn/agent/update/sign"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestAttach(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []registry.Option
	}{
		{"fallback tag", nil},
		{"referrers API", []registry.Option{registry.WithReferrersSupport(true)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			host := startRegistry(t, tc.opts...)
			ref := pushArtifact(t, host+"/edge/shop")
			reg := httpRegistry{host}
			key, _ := sign.GenerateKey()
			other, _ := sign.GenerateKey()
			keys := []*ecdsa.PublicKey{&key.PublicKey}

			if _, err := sign.Verify(ctx, reg, "edge/shop", ref.DigestStr(), keys); !errors.Is(err, sign.ErrUnsigned) {
				t.Fatalf("before Attach: Verify = %v, want ErrUnsigned", err)
			}
			if err := Attach(ctx, ref, key); err != nil {
				t.Fatal(err)
			}
			// Signing twice replaces our own signature; another key's stays.
			if err := Attach(ctx, ref, key); err != nil {
				t.Fatal(err)
			}
			if err := Attach(ctx, ref, other); err != nil {
				t.Fatal(err)
			}
			img, err := remote.Image(ref.Context().Tag(sign.SignatureTag(ref.DigestStr())))
			if err != nil {
				t.Fatal(err)
			}
			if m, _ := img.Manifest(); len(m.Layers) != 2 {
				t.Fatalf(".sig manifest has %d layers, want 2 (one per key)", len(m.Layers))
			}

			res, err := sign.Verify(ctx, reg, "edge/shop", ref.DigestStr(), keys)
			if err != nil {
				t.Fatal(err)
			}
			if res.Key != sign.Fingerprint(&key.PublicKey) {
				t.Fatalf("verified with %s, want %s", res.Key, sign.Fingerprint(&key.PublicKey))
			}
			// Each form on its own: hide the other one from Verify.
			for _, form := range []sign.Form{sign.FormSimpleSigning, sign.FormBundle} {
				res, err := sign.Verify(ctx, only{reg, form}, "edge/shop", ref.DigestStr(), keys)
				if err != nil || res.Form != form {
					t.Fatalf("%s alone: Verify = %+v, %v", form, res, err)
				}
			}
			stranger, _ := sign.GenerateKey()
			if _, err := sign.Verify(ctx, reg, "edge/shop", ref.DigestStr(), []*ecdsa.PublicKey{&stranger.PublicKey}); !errors.Is(err, sign.ErrBadSignature) {
				t.Fatalf("other key: Verify = %v, want ErrBadSignature", err)
			}
		})
	}
}

// only hides the signatures of every form but one.
type only struct {
	httpRegistry
	form sign.Form
}

func (o only) Manifest(ctx context.Context, repo, ref string) (string, []byte, error) {
	isSig := len(ref) > 4 && ref[len(ref)-4:] == ".sig"
	if isSig != (o.form == sign.FormSimpleSigning) && ref[:7] == "sha256-" {
		return "", nil, sign.ErrNotFound
	}
	return o.httpRegistry.Manifest(ctx, repo, ref)
}

func (o only) Referrers(ctx context.Context, repo, digest string) ([]byte, error) {
	if o.form != sign.FormBundle {
		return nil, sign.ErrNotFound
	}
	return o.httpRegistry.Referrers(ctx, repo, digest)
}
