// Package sign makes and checks update artifact signatures in the forms
// cosign uses, with the standard library's crypto only (cosign's own
// verify path pulls in about a hundred modules). Keys are ECDSA P-256;
// checks are offline: no transparency log, no certificates.
//
// Two forms exist in registries:
//
//   - cosign v2 ("simple signing"): a manifest under the tag
//     sha256-<hex>.sig whose layers are JSON payloads naming the signed
//     manifest digest (SimpleSigning), each with its signature in the
//     layer annotation SignatureAnnotation (Sign, VerifySimpleSigning).
//   - cosign v3: a Sigstore bundle (BundleMediaType) in a manifest that
//     refers to the signed one as its subject, found through the OCI
//     referrers API or the fallback tag sha256-<hex> (VerifyBundle).
//
// Verify finds and checks both through a small Registry interface:
//
//	res, err := sign.Verify(ctx, reg, "edge/shop", digest, keys)
//	switch {
//	case errors.Is(err, sign.ErrUnsigned):     // nothing signed it
//	case errors.Is(err, sign.ErrBadSignature): // signed, but not by our keys, or tampered
//	}
package sign

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Formats and names cosign uses.
const (
	// SimpleSigningMediaType is the media type of a cosign v2 signature layer.
	SimpleSigningMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	// SignatureAnnotation is the layer annotation holding the base64 signature.
	SignatureAnnotation = "dev.cosignproject.cosign/signature"
	// SimpleSigningType is the payload's critical.type.
	SimpleSigningType = "cosign container image signature"
)

// Size caps on what a registry sends; anything larger is refused unread.
const (
	// MaxPayloadSize bounds a simple-signing payload (cosign's are < 1 KiB).
	MaxPayloadSize = 64 << 10
	// MaxBundleSize bounds a Sigstore bundle (one with a certificate chain
	// and log entries is about 10 KiB).
	MaxBundleSize = 256 << 10
	// maxSignatureB64 bounds a base64 signature (an ASN.1 P-256 one is ≤ 72 bytes).
	maxSignatureB64 = 1 << 10
)

// ErrBadSignature is wrapped by every error about a signature that is
// there but does not prove the artifact: tampered, made by another key,
// or naming another manifest.
var ErrBadSignature = errors.New("bad signature")

// SimpleSigning returns the cosign "simple signing" payload that says
// dockerReference (registry/repository, no tag) at manifestDigest
// (sha256:<hex>) is signed. It is what Sign signs and what a v2 signature
// layer holds.
func SimpleSigning(dockerReference, manifestDigest string) []byte {
	var p simpleSigning
	p.Critical.Identity.DockerReference = dockerReference
	p.Critical.Image.DockerManifestDigest = manifestDigest
	p.Critical.Type = SimpleSigningType
	b, _ := json.Marshal(p) // strings only: cannot fail
	return b
}

// simpleSigning is the payload, field order as cosign writes it.
type simpleSigning struct {
	Critical struct {
		Identity struct {
			DockerReference string `json:"docker-reference"`
		} `json:"identity"`
		Image struct {
			DockerManifestDigest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Type string `json:"type"`
	} `json:"critical"`
	Optional map[string]any `json:"optional"`
}

// parseSimpleSigning decodes a payload and returns the manifest digest it signs.
func parseSimpleSigning(b []byte) (string, error) {
	if len(b) > MaxPayloadSize {
		return "", fmt.Errorf("simple-signing payload is %d bytes, more than the %d allowed", len(b), MaxPayloadSize)
	}
	var p simpleSigning
	if err := json.Unmarshal(b, &p); err != nil {
		return "", fmt.Errorf("simple-signing payload is not JSON: %v", err)
	}
	if p.Critical.Type != SimpleSigningType {
		return "", fmt.Errorf("simple-signing payload has type %q, want %q", trunc(p.Critical.Type), SimpleSigningType)
	}
	return p.Critical.Image.DockerManifestDigest, nil
}

// Sign signs payload with key the way cosign does: ECDSA over SHA-256 of
// the payload, ASN.1 encoded, returned in standard base64 (the value of
// SignatureAnnotation).
func Sign(key *ecdsa.PrivateKey, payload []byte) (string, error) {
	h := sha256.Sum256(payload)
	sig, err := ecdsa.SignASN1(rand.Reader, key, h[:])
	if err != nil {
		return "", fmt.Errorf("signing: %v", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// VerifySimpleSigning checks a cosign v2 signature: sigB64 is a signature
// of payload by one of keys, and payload is a simple-signing payload for
// manifestDigest. Errors about the signature wrap ErrBadSignature.
func VerifySimpleSigning(payload []byte, sigB64 string, manifestDigest string, keys []*ecdsa.PublicKey) error {
	if _, err := digestHex(manifestDigest); err != nil {
		return err
	}
	if _, err := verifySimpleSigning(payload, sigB64, manifestDigest, keys); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return nil
}

// verifySimpleSigning is VerifySimpleSigning for a checked digest,
// returning the key that verified.
func verifySimpleSigning(payload []byte, sigB64 string, manifestDigest string, keys []*ecdsa.PublicKey) (*ecdsa.PublicKey, error) {
	if len(payload) > MaxPayloadSize {
		return nil, fmt.Errorf("simple-signing payload is %d bytes, more than the %d allowed", len(payload), MaxPayloadSize)
	}
	sig, err := decodeSig(sigB64)
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(payload)
	key := verifyAny(keys, h[:], sig)
	if key == nil {
		return nil, fmt.Errorf("the simple-signing signature was made by none of the %d trusted keys, or the payload was changed", len(keys))
	}
	// Only a signed payload is parsed: its claims are the signer's.
	got, err := parseSimpleSigning(payload)
	if err != nil {
		return nil, err
	}
	if got != manifestDigest {
		return nil, fmt.Errorf("the simple-signing payload signs %s, not %s (a signature copied from another artifact)", trunc(got), manifestDigest)
	}
	return key, nil
}

// decodeSig decodes a base64 ASN.1 signature.
func decodeSig(s string) ([]byte, error) {
	if len(s) > maxSignatureB64 {
		return nil, fmt.Errorf("signature is %d characters, more than the %d allowed", len(s), maxSignatureB64)
	}
	sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(sig) == 0 {
		return nil, errors.New("signature is not base64")
	}
	return sig, nil
}

// verifyAny returns the first of keys whose ASN.1 ECDSA signature sig is
// over hash, or nil.
func verifyAny(keys []*ecdsa.PublicKey, hash, sig []byte) *ecdsa.PublicKey {
	for _, k := range keys {
		if k != nil && ecdsa.VerifyASN1(k, hash, sig) {
			return k
		}
	}
	return nil
}

// trunc shortens hostile strings for error messages.
func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
