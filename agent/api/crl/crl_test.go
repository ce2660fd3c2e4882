package crl

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(t testing.TB) testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true, SubjectKeyId: []byte{1, 2, 3}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return testCA{cert, key}
}

// list signs a CRL numbered number revoking serials.
func (ca testCA) list(t testing.TB, number int64, serials ...int64) []byte {
	t.Helper()
	tmpl := &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: time.Now(), NextUpdate: time.Now().Add(time.Hour)}
	for _, s := range serials {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: big.NewInt(s), RevocationTime: time.Now()})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.cert, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

func TestParse(t *testing.T) {
	ca, other := newCA(t), newCA(t)
	good := ca.list(t, 7, 10, 11)
	tests := []struct {
		name    string
		data    []byte
		wantErr string
	}{
		{"good", good, ""},
		{"another CA", other.list(t, 7), "not signed by the node API's CA"},
		{"two blocks", append(append([]byte{}, good...), good...), "more than one PEM block"},
		{"a certificate", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}), "not a PEM X509 CRL"},
		{"garbage DER", pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: []byte{0x30, 3, 1, 2, 3}}), "CRL:"},
		{"too big", make([]byte, MaxSize+1), "more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Parse(tt.data, ca.cert)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if l.Number.Int64() != 7 || !l.Revoked(big.NewInt(10)) || !l.Revoked(big.NewInt(11)) || l.Revoked(big.NewInt(12)) || l.Len() != 2 {
					t.Errorf("list %v, %d entries", l.Number, l.Len())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestOpen(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	baked, state := filepath.Join(dir, "baked.pem"), filepath.Join(dir, "state", "crl.pem")
	s, err := Open(ca.cert, baked, state)
	if err != nil || s.Current() != nil || s.Revoked(big.NewInt(1)) {
		t.Fatalf("no files: %v, %v", s.Current(), err)
	}
	for _, tt := range []struct {
		name         string
		baked, state []byte
		want         int64
	}{
		{"baked only", ca.list(t, 3, 1), nil, 3},
		{"stored newer", ca.list(t, 3, 1), ca.list(t, 5, 1, 2), 5},
		{"baked newer (an image built after the push)", ca.list(t, 6, 1, 2, 3), ca.list(t, 5, 1, 2), 6},
	} {
		t.Run(tt.name, func(t *testing.T) {
			os.WriteFile(baked, tt.baked, 0o644)
			os.Remove(state)
			if tt.state != nil {
				os.MkdirAll(filepath.Dir(state), 0o755)
				os.WriteFile(state, tt.state, 0o644)
			}
			s, err := Open(ca.cert, baked, state)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Current().Number.Int64(); got != tt.want {
				t.Errorf("number = %d, want %d", got, tt.want)
			}
		})
	}
	os.WriteFile(state, []byte("torn"), 0o644)
	if _, err := Open(ca.cert, baked, state); err == nil || !strings.Contains(err.Error(), state) {
		t.Errorf("a corrupt stored CRL: %v, want an error naming it", err)
	}
}

// TestInstall: newer lists replace the one held and are stored; older
// ones, or another with the same number, are refused.
func TestInstall(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "api", "crl.pem")
	s, err := Open(ca.cert, filepath.Join(dir, "none"), state)
	if err != nil {
		t.Fatal(err)
	}
	l4 := ca.list(t, 4, 9)
	if _, err := s.Install(l4); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(state); string(got) != string(l4) {
		t.Error("the installed list is not stored")
	}
	for _, tt := range []struct {
		name    string
		data    []byte
		wantErr error
	}{
		{"older", ca.list(t, 3), ErrOlder},
		{"same number, other list", ca.list(t, 4), ErrOlder},
		{"unsigned", newCA(t).list(t, 9), ErrInvalid},
		{"same list again", l4, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Install(tt.data)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Install = %v, want %v", err, tt.wantErr)
			}
		})
	}
	if s.Current().Number.Int64() != 4 || !s.Revoked(big.NewInt(9)) {
		t.Errorf("held list %v", s.Current().Number)
	}
}

// FuzzParse: whatever arrives over POST /v1/crl, Parse returns a list or an
// error, never panics, and believes nothing the CA did not sign.
func FuzzParse(f *testing.F) {
	ca := newCA(f)
	f.Add(ca.list(f, 1, 5))
	f.Add(ca.list(f, 2))
	f.Add([]byte("-----BEGIN X509 CRL-----\nMAA=\n-----END X509 CRL-----\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := Parse(data, ca.cert)
		if err != nil {
			return
		}
		if l.Number == nil || l.Number.Sign() < 0 {
			t.Fatalf("accepted a list without a number")
		}
	})
}
