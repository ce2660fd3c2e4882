package sign

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// GenerateKey makes a new ECDSA P-256 signing key, the kind cosign uses.
func GenerateKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// MarshalPublicKey encodes pub as a PEM "PUBLIC KEY" block (PKIX), the
// form of cosign.pub; the spec's update.keys and cosign verify --key read it.
func MarshalPublicKey(pub *ecdsa.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("public key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// MarshalPrivateKey encodes key as an unencrypted PEM "PRIVATE KEY" block
// (PKCS#8). Whoever writes it to a file gives the file mode 0600.
func MarshalPrivateKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("private key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// LoadPrivateKey reads a private key file written by `cairn keygen` (or
// any unencrypted PEM ECDSA P-256 key).
func LoadPrivateKey(path string) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %v (make one with cairn keygen)", err)
	}
	key, err := ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	return key, nil
}

// ParsePrivateKey decodes a PEM "PRIVATE KEY" (PKCS#8) or "EC PRIVATE KEY"
// (SEC 1) block holding an ECDSA P-256 key. Cosign's password-encrypted
// keys are refused with a hint: decrypting them needs scrypt and
// NaCl secretbox, which the agent and builder do not carry.
func ParsePrivateKey(b []byte) (*ecdsa.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("not a PEM private key (want the cairn.key that cairn keygen writes)")
	}
	var (
		key any
		err error
	)
	switch blk.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(blk.Bytes)
	case "ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY":
		return nil, errors.New("this is a password-encrypted cosign key, which cairn cannot read (use the key from cairn keygen, or push without --key and sign with cosign sign --key yourself)")
	default:
		return nil, fmt.Errorf("PEM block is %q, want PRIVATE KEY (the cairn.key that cairn keygen writes)", blk.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("private key: %v", err)
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, errors.New("private key is not ECDSA P-256 (make one with cairn keygen)")
	}
	return ec, nil
}

// Fingerprint names a public key in logs and status: "sha256:" and the
// hex SHA-256 of its PKIX encoding (the DER inside cosign.pub).
func Fingerprint(pub *ecdsa.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "invalid key"
	}
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:])
}
