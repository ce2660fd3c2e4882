package sign

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/cairn-edge/cairn/agent/update/artifact"
)

// Sigstore bundle and in-toto names.
const (
	// BundleMediaType is a Sigstore bundle v0.3, as cosign v3 writes it; it
	// is also the artifactType of the referrer manifest holding it.
	BundleMediaType = "application/vnd.dev.sigstore.bundle.v0.3+json"
	// InTotoPayloadType is the DSSE payload type of an in-toto statement.
	InTotoPayloadType = "application/vnd.in-toto+json"
	// InTotoStatementType is the statement's _type.
	InTotoStatementType = "https://in-toto.io/Statement/v1"
	// CosignSignPredicateType is the predicate of the statement `cosign
	// sign` makes. Statements of other predicates (SBOMs, provenance made
	// with cosign attest) say something about an artifact but are not a
	// decision to install it, so they do not count as signatures.
	CosignSignPredicateType = "https://sigstore.dev/cosign/sign/v1"
)

// maxSignatures bounds the signatures of one DSSE envelope we try.
const maxSignatures = 8

// bundle is the part of a Sigstore bundle an offline key check reads.
// Exactly one of DSSEEnvelope and MessageSignature is set.
type bundle struct {
	MediaType        string            `json:"mediaType"`
	DSSEEnvelope     *dsseEnvelope     `json:"dsseEnvelope"`
	MessageSignature *messageSignature `json:"messageSignature"`
}

type dsseEnvelope struct {
	Payload     []byte `json:"payload"` // base64 in JSON
	PayloadType string `json:"payloadType"`
	Signatures  []struct {
		Sig   []byte `json:"sig"`
		KeyID string `json:"keyid,omitempty"`
	} `json:"signatures"`
}

type messageSignature struct {
	MessageDigest struct {
		Algorithm string `json:"algorithm"`
		Digest    []byte `json:"digest"`
	} `json:"messageDigest"`
	Signature []byte `json:"signature"`
}

// statement is an in-toto statement.
type statement struct {
	Type    string `json:"_type"`
	Subject []struct {
		Name   string            `json:"name"`
		Digest map[string]string `json:"digest"`
	} `json:"subject"`
	PredicateType string          `json:"predicateType"`
	Predicate     json.RawMessage `json:"predicate"`
}

// PAE is DSSE's pre-authentication encoding of a payload: what a DSSE
// signature signs.
func PAE(payloadType string, payload []byte) []byte {
	var b bytes.Buffer
	b.WriteString("DSSEv1 ")
	b.WriteString(strconv.Itoa(len(payloadType)))
	b.WriteByte(' ')
	b.WriteString(payloadType)
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(len(payload)))
	b.WriteByte(' ')
	b.Write(payload)
	return b.Bytes()
}

// VerifyBundle checks a Sigstore bundle v0.3 against manifestDigest
// offline with keys: either a DSSE envelope whose signature (over PAE) is
// by one of keys and whose in-toto statement, of cosign sign's predicate,
// has a subject with that sha256; or a message signature over that
// digest. Transparency-log entries and certificates in the bundle are not
// checked (an edge box has no log to ask). Errors about the bundle wrap
// ErrBadSignature.
func VerifyBundle(bundleJSON []byte, manifestDigest string, keys []*ecdsa.PublicKey) error {
	if _, err := digestHex(manifestDigest); err != nil {
		return err
	}
	if _, err := verifyBundle(bundleJSON, manifestDigest, keys); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return nil
}

// verifyBundle is VerifyBundle for a checked digest, returning the key
// that verified.
func verifyBundle(bundleJSON []byte, manifestDigest string, keys []*ecdsa.PublicKey) (*ecdsa.PublicKey, error) {
	b, err := parseBundle(bundleJSON)
	if err != nil {
		return nil, err
	}
	want := manifestDigest[len("sha256:"):]
	if m := b.MessageSignature; m != nil {
		got := hex.EncodeToString(m.MessageDigest.Digest)
		if got != want {
			return nil, fmt.Errorf("the bundle's message signature is over sha256:%s, not %s", trunc(got), manifestDigest)
		}
		key := verifyAny(keys, m.MessageDigest.Digest, m.Signature)
		if key == nil {
			return nil, fmt.Errorf("the bundle's message signature was made by none of the %d trusted keys", len(keys))
		}
		return key, nil
	}
	e := b.DSSEEnvelope
	h := sha256.Sum256(PAE(e.PayloadType, e.Payload))
	var key *ecdsa.PublicKey
	for _, s := range e.Signatures {
		if key = verifyAny(keys, h[:], s.Sig); key != nil {
			break
		}
	}
	if key == nil {
		return nil, fmt.Errorf("the bundle's DSSE signature was made by none of the %d trusted keys, or its statement was changed", len(keys))
	}
	// Only a signed statement is parsed: its claims are the signer's.
	st, err := parseStatement(e.Payload)
	if err != nil {
		return nil, err
	}
	for _, s := range st.Subject {
		if s.Digest["sha256"] == want {
			return key, nil
		}
	}
	return nil, fmt.Errorf("the bundle's statement has no subject with digest %s (a signature copied from another artifact)", manifestDigest)
}

// parseBundle decodes a bundle and checks its shape.
func parseBundle(b []byte) (*bundle, error) {
	if len(b) > MaxBundleSize {
		return nil, fmt.Errorf("bundle is %d bytes, more than the %d allowed", len(b), MaxBundleSize)
	}
	var bd bundle
	if err := json.Unmarshal(b, &bd); err != nil {
		return nil, fmt.Errorf("bundle is not JSON: %v", err)
	}
	if bd.MediaType != BundleMediaType {
		return nil, fmt.Errorf("bundle has media type %q, want %s", trunc(bd.MediaType), BundleMediaType)
	}
	switch {
	case (bd.DSSEEnvelope == nil) == (bd.MessageSignature == nil):
		return nil, fmt.Errorf("bundle has %s, want exactly one of dsseEnvelope and messageSignature", map[bool]string{true: "both", false: "neither"}[bd.DSSEEnvelope != nil])
	case bd.MessageSignature != nil:
		if a := bd.MessageSignature.MessageDigest.Algorithm; a != "SHA2_256" {
			return nil, fmt.Errorf("bundle's message digest is %q, want SHA2_256", trunc(a))
		}
	default:
		e := bd.DSSEEnvelope
		if e.PayloadType != InTotoPayloadType {
			return nil, fmt.Errorf("bundle's DSSE payload type is %q, want %s", trunc(e.PayloadType), InTotoPayloadType)
		}
		if n := len(e.Signatures); n == 0 || n > maxSignatures {
			return nil, fmt.Errorf("bundle's DSSE envelope has %d signatures, want 1 to %d", n, maxSignatures)
		}
	}
	return &bd, nil
}

// parseStatement decodes an in-toto statement of cosign sign's predicate.
func parseStatement(b []byte) (*statement, error) {
	var st statement
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("in-toto statement is not JSON: %v", err)
	}
	if st.Type != InTotoStatementType && st.Type != "https://in-toto.io/Statement/v0.1" {
		return nil, fmt.Errorf("in-toto statement has _type %q, want %s", trunc(st.Type), InTotoStatementType)
	}
	if st.PredicateType != CosignSignPredicateType {
		return nil, fmt.Errorf("in-toto statement has predicate %q, want %s (an attestation is not a signature)", trunc(st.PredicateType), CosignSignPredicateType)
	}
	return &st, nil
}

// digestHex returns the hex of a sha256:<hex> digest.
func digestHex(d string) (string, error) {
	if !artifact.ValidDigest(d) {
		return "", fmt.Errorf("manifest digest %q is not sha256:<64 hex>", trunc(d))
	}
	return d[len("sha256:"):], nil
}
