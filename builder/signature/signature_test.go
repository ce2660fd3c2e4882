package signature

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"testing"

	"github.com/cairn-edge/cairn/agent/update/sign"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestAttach(t *testing.T) {
	ctx := context.Background()
	host := startRegistry(t)
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
	// No bundle referrer: cosign v2 verify would take it and fail offline.
	if _, _, err := reg.Manifest(ctx, "edge/shop", sign.ReferrersTag(ref.DigestStr())); !errors.Is(err, sign.ErrNotFound) {
		t.Fatalf("referrers tag after Attach: %v, want none", err)
	}

	for _, k := range []*ecdsa.PrivateKey{key, other} {
		res, err := sign.Verify(ctx, reg, "edge/shop", ref.DigestStr(), []*ecdsa.PublicKey{&k.PublicKey})
		if err != nil {
			t.Fatal(err)
		}
		if res.Form != sign.FormSimpleSigning || res.Key != sign.Fingerprint(&k.PublicKey) {
			t.Fatalf("Verify = %+v, want simple signing by %s", res, sign.Fingerprint(&k.PublicKey))
		}
	}
	stranger, _ := sign.GenerateKey()
	if _, err := sign.Verify(ctx, reg, "edge/shop", ref.DigestStr(), []*ecdsa.PublicKey{&stranger.PublicKey}); !errors.Is(err, sign.ErrBadSignature) {
		t.Fatalf("other key: Verify = %v, want ErrBadSignature", err)
	}
}
