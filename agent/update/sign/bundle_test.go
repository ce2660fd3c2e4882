package sign

import (
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestPAE(t *testing.T) {
	// The DSSE specification's example.
	got := string(PAE("http://example.com/HelloWorld", []byte("hello world")))
	if want := "DSSEv1 29 http://example.com/HelloWorld 11 hello world"; got != want {
		t.Fatalf("PAE = %q, want %q", got, want)
	}
}

// dsseBundle makes a bundle of statement st signed with key.
func dsseBundle(t testing.TB, key *ecdsa.PrivateKey, payloadType string, st any) []byte {
	t.Helper()
	payload, _ := json.Marshal(st)
	sig := mustSign(t, key, PAE(payloadType, payload))
	b, _ := json.Marshal(map[string]any{
		"mediaType":    BundleMediaType,
		"dsseEnvelope": map[string]any{"payload": payload, "payloadType": payloadType, "signatures": []any{map[string]string{"sig": sig}}},
	})
	return b
}

func statementFor(digest, predicate string) map[string]any {
	return map[string]any{
		"_type":         InTotoStatementType,
		"subject":       []any{map[string]any{"name": "r.example/x", "digest": map[string]string{"sha256": digest[7:]}}},
		"predicateType": predicate,
		"predicate":     map[string]any{},
	}
}

// messageBundle makes a message-signature bundle over digest.
func messageBundle(t *testing.T, key *ecdsa.PrivateKey, digest string) []byte {
	t.Helper()
	h, _ := hex.DecodeString(digest[7:])
	sig, err := ecdsa.SignASN1(rand.Reader, key, h)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{
		"mediaType":        BundleMediaType,
		"messageSignature": map[string]any{"messageDigest": map[string]any{"algorithm": "SHA2_256", "digest": h}, "signature": sig},
	})
	return b
}

func TestVerifyBundle(t *testing.T) {
	key, other := mustKey(t), mustKey(t)
	keys := []*ecdsa.PublicKey{&other.PublicKey, &key.PublicKey}
	signed := dsseBundle(t, key, InTotoPayloadType, statementFor(digestA, CosignSignPredicateType))
	tampered := strings.Replace(string(signed), `"payload":"`, `"payload":"ICAg`, 1) // another statement, same signature
	for _, tc := range []struct {
		name   string
		bundle []byte
		digest string
		keys   []*ecdsa.PublicKey
		want   string // error text; empty means valid
	}{
		{"dsse", signed, digestA, keys, ""},
		{"cosign v3.1.3", cosignBundle, cosignDigest, []*ecdsa.PublicKey{cosignKey(t)}, ""},
		{"statement v0.1", dsseBundle(t, key, InTotoPayloadType, statementV01), digestA, keys, ""},
		{"message signature", messageBundle(t, key, digestA), digestA, keys, ""},
		{"other key", signed, digestA, []*ecdsa.PublicKey{&other.PublicKey}, "none of the 1 trusted keys"},
		{"tampered statement", []byte(tampered), digestA, keys, "statement was changed"},
		{"other subject", signed, digestB, keys, "no subject with digest"},
		{"attestation", dsseBundle(t, key, InTotoPayloadType, statementFor(digestA, "https://slsa.dev/provenance/v1")), digestA, keys, "an attestation is not a signature"},
		{"not in-toto", dsseBundle(t, key, "text/plain", statementFor(digestA, CosignSignPredicateType)), digestA, keys, "payload type"},
		{"bad statement type", dsseBundle(t, key, InTotoPayloadType, map[string]any{"_type": "x"}), digestA, keys, "_type"},
		{"message other digest", messageBundle(t, key, digestB), digestA, keys, "not " + digestA},
		{"message other key", messageBundle(t, other, digestA), digestA, []*ecdsa.PublicKey{&key.PublicKey}, "none of the 1 trusted keys"},
		{"message sha512", []byte(`{"mediaType":"` + BundleMediaType + `","messageSignature":{"messageDigest":{"algorithm":"SHA2_512"}}}`), digestA, keys, "SHA2_256"},
		{"neither", []byte(`{"mediaType":"` + BundleMediaType + `"}`), digestA, keys, "has neither"},
		{"both", []byte(`{"mediaType":"` + BundleMediaType + `","dsseEnvelope":{},"messageSignature":{}}`), digestA, keys, "has both"},
		{"no signatures", []byte(`{"mediaType":"` + BundleMediaType + `","dsseEnvelope":{"payloadType":"` + InTotoPayloadType + `"}}`), digestA, keys, "0 signatures"},
		{"v0.2", []byte(`{"mediaType":"application/vnd.dev.sigstore.bundle+json;version=0.2"}`), digestA, keys, "media type"},
		{"huge", make([]byte, MaxBundleSize+1), digestA, keys, "more than"},
		{"not json", []byte("{"), digestA, keys, "not JSON"},
		{"bad digest", signed, "sha256:x", keys, "not sha256:<64 hex>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyBundle(tc.bundle, tc.digest, tc.keys)
			if tc.want == "" && err != nil {
				t.Fatalf("VerifyBundle: %v", err)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("VerifyBundle = %v, want an error with %q", err, tc.want)
			}
			if tc.want != "" && tc.name != "bad digest" && !errors.Is(err, ErrBadSignature) {
				t.Fatalf("error %v does not wrap ErrBadSignature", err)
			}
		})
	}
}

func FuzzParseBundle(f *testing.F) {
	key := mustKey(f)
	f.Add(dsseBundle(f, key, InTotoPayloadType, statementFor(digestA, CosignSignPredicateType)))
	f.Add(cosignBundle)
	f.Add([]byte(`{"mediaType":"` + BundleMediaType + `","messageSignature":{"messageDigest":{"algorithm":"SHA2_256","digest":"qg=="},"signature":"MEQ="}}`))
	keys := []*ecdsa.PublicKey{&key.PublicKey}
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := parseBundle(b); err != nil {
			return
		}
		// A mutated bundle may still verify only if the fuzzer kept the
		// signature and the signed statement intact.
		_ = VerifyBundle(b, digestA, keys)
	})
}

func FuzzParseStatement(f *testing.F) {
	b, _ := json.Marshal(statementFor(digestA, CosignSignPredicateType))
	f.Add(b)
	f.Add([]byte(`{"_type":"https://in-toto.io/Statement/v0.1","subject":[{"digest":{}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseStatement(b)
		if err == nil && st.PredicateType != CosignSignPredicateType {
			t.Fatalf("accepted predicate %q", st.PredicateType)
		}
	})
}

// What cosign v3.1.3 `sign --key --tlog-upload=false` wrote for an
// artifact, and its key (testdata).
var (
	cosignBundle = mustRead("testdata/cosign-v3.1.3.bundle.json")
	cosignDigest = "sha256:0881834a27b849f43babdd309413559fe38d3863f498c961bb06769ebfc93ec5"
)

var statementV01 = map[string]any{
	"_type":         "https://in-toto.io/Statement/v0.1",
	"subject":       []any{map[string]any{"digest": map[string]string{"sha256": digestA[7:]}}},
	"predicateType": CosignSignPredicateType,
}

func cosignKey(t testing.TB) *ecdsa.PublicKey { return readKey(t, "testdata/cosign-v3.1.3.pub") }
