package sign

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent/config"
)

func TestKeyRoundTrip(t *testing.T) {
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	priv, err := MarshalPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := MarshalPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cairn.key")
	if err := os.WriteFile(path, priv, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := LoadPrivateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(key) {
		t.Fatal("loaded key differs from the one written")
	}
	// The spec's parser reads what MarshalPublicKey writes.
	gotPub, err := config.ParsePublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if !gotPub.Equal(&key.PublicKey) {
		t.Fatal("parsed public key differs")
	}
	if fp := Fingerprint(gotPub); !strings.HasPrefix(fp, "sha256:") || len(fp) != 71 || fp != Fingerprint(&key.PublicKey) {
		t.Fatalf("Fingerprint = %q", fp)
	}
}

func TestParsePrivateKey(t *testing.T) {
	block := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384DER, _ := x509.MarshalPKCS8PrivateKey(p384)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	edDER, _ := x509.MarshalPKCS8PrivateKey(edKey)
	p256, _ := GenerateKey()
	sec1, _ := x509.MarshalECPrivateKey(p256)
	for _, tc := range []struct {
		name string
		in   []byte
		want string // error text; empty means valid
	}{
		{"sec1", block("EC PRIVATE KEY", sec1), ""},
		{"cosign v2 encrypted", block("ENCRYPTED COSIGN PRIVATE KEY", []byte("{}")), "password-encrypted cosign key"},
		{"cosign encrypted", block("ENCRYPTED SIGSTORE PRIVATE KEY", []byte("{}")), "cosign sign --key"},
		{"p384", block("PRIVATE KEY", p384DER), "not ECDSA P-256"},
		{"ed25519", block("PRIVATE KEY", edDER), "not ECDSA P-256"},
		{"public key", block("PUBLIC KEY", []byte{1}), `"PUBLIC KEY"`},
		{"bad der", block("PRIVATE KEY", []byte{1, 2}), "private key:"},
		{"not pem", []byte("hello"), "not a PEM private key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePrivateKey(tc.in)
			if tc.want == "" && err != nil {
				t.Fatalf("ParsePrivateKey: %v", err)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("ParsePrivateKey = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestLoadPrivateKeyMissing(t *testing.T) {
	_, err := LoadPrivateKey(filepath.Join(t.TempDir(), "none.key"))
	if err == nil || !strings.Contains(err.Error(), "cairn keygen") {
		t.Fatalf("LoadPrivateKey = %v, want a hint to cairn keygen", err)
	}
}

func mustRead(path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	return b
}

func readKey(t testing.TB, path string) *ecdsa.PublicKey {
	t.Helper()
	k, err := config.ParsePublicKey(mustRead(path))
	if err != nil {
		t.Fatal(err)
	}
	return k
}
