package sign

import (
	"crypto/ecdsa"
	"errors"
	"strings"
	"testing"
)

const (
	digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func mustKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustSign(t testing.TB, key *ecdsa.PrivateKey, payload []byte) string {
	t.Helper()
	s, err := Sign(key, payload)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSimpleSigning(t *testing.T) {
	// cosign's byte layout (sigstore/sigstore payload.Cosign without annotations).
	want := `{"critical":{"identity":{"docker-reference":"registry.example/edge/shop"},"image":{"docker-manifest-digest":"` + digestA + `"},"type":"cosign container image signature"},"optional":null}`
	if got := string(SimpleSigning("registry.example/edge/shop", digestA)); got != want {
		t.Fatalf("SimpleSigning =\n%s\nwant\n%s", got, want)
	}
}

func TestVerifySimpleSigning(t *testing.T) {
	key, other := mustKey(t), mustKey(t)
	keys := []*ecdsa.PublicKey{&other.PublicKey, &key.PublicKey}
	payload := SimpleSigning("r.example/x", digestA)
	sig := mustSign(t, key, payload)
	for _, tc := range []struct {
		name    string
		payload []byte
		sig     string
		digest  string
		keys    []*ecdsa.PublicKey
		want    string // error text; empty means valid
	}{
		{"valid", payload, sig, digestA, keys, ""},
		{"cosign v2.6.5", mustRead("testdata/cosign-v2.6.5.payload.json"), string(mustRead("testdata/cosign-v2.6.5.sig")),
			"sha256:59b9a2b9c809ed9076c0ae434333b097704bd3c88953e187400487c313600614", []*ecdsa.PublicKey{readKey(t, "testdata/cosign-v2.6.5.pub")}, ""},
		{"other key", payload, sig, digestA, []*ecdsa.PublicKey{&other.PublicKey}, "none of the 1 trusted keys"},
		{"no keys", payload, sig, digestA, nil, "none of the 0 trusted keys"},
		{"tampered payload", SimpleSigning("r.example/x", digestB), sig, digestB, keys, "payload was changed"},
		{"other digest", payload, sig, digestB, keys, "a signature copied from another artifact"},
		{"not base64", payload, "!!", digestA, keys, "not base64"},
		{"empty signature", payload, "", digestA, keys, "not base64"},
		{"huge signature", payload, strings.Repeat("A", 2000), digestA, keys, "characters"},
		{"huge payload", make([]byte, MaxPayloadSize+1), sig, digestA, keys, "more than"},
		{"bad digest", payload, sig, "sha256:AA", keys, "not sha256:<64 hex>"},
		{"wrong type", []byte(`{"critical":{"image":{"docker-manifest-digest":"` + digestA + `"},"type":"x"}}`), "", digestA, keys, "has type"},
		{"not json", []byte("nope"), "", digestA, keys, "not JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.sig
			if s == "" && tc.name != "empty signature" {
				s = mustSign(t, key, tc.payload) // signed, so the claim checks run
			}
			err := VerifySimpleSigning(tc.payload, s, tc.digest, tc.keys)
			if tc.want == "" && err != nil {
				t.Fatalf("VerifySimpleSigning: %v", err)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("VerifySimpleSigning = %v, want an error with %q", err, tc.want)
			}
			if tc.want != "" && tc.name != "bad digest" && !errors.Is(err, ErrBadSignature) {
				t.Fatalf("error %v does not wrap ErrBadSignature", err)
			}
		})
	}
}

func FuzzParseSimpleSigning(f *testing.F) {
	f.Add(SimpleSigning("r.example/x", digestA))
	f.Add(mustRead("testdata/cosign-v2.6.5.payload.json"))
	f.Add([]byte(`{"critical":{"type":"cosign container image signature"},"optional":{"a":[1,{"b":null}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := parseSimpleSigning(b)
		if err == nil && len(d) > len(b) {
			t.Fatalf("digest %q longer than the payload", d)
		}
	})
}
