package pki

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/cairn-edge/cairn/agent/api/crl"
	"github.com/cairn-edge/cairn/agent/api/role"
	"github.com/cairn-edge/cairn/agent/atomicfile"
	"github.com/cairn-edge/cairn/agent/contract"
)

// IssuedDir is the directory of a PKI directory that records the client
// certificates IssueClient made, as NAME.crt, so Revoke finds them by name.
const IssuedDir = "issued"

// CRLFile is the PKI directory's revocation list; builds bake it into the
// slot (contract.APICRLBaked).
const CRLFile = contract.APICRLName

// clientName is what a client name may look like: it names a file and shows
// in the node's audit log.
var clientName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// IssueClient issues a client certificate called name with role r from the
// CA in dir (whose ca.key must be there), valid from now for ClientValidity
// (at most until the CA expires), and records it as issued/NAME.crt. A name
// issued before and not revoked is refused: names are how Revoke finds
// certificates. The returned PKI holds the CA and the new pair as Client,
// ready for WriteClientConfig.
func IssueClient(dir, name string, r role.Role, now time.Time) (*PKI, error) {
	if !clientName.MatchString(name) {
		return nil, fmt.Errorf("client name %q is not valid: letters, digits, '.', '_', '-', at most 64 (e.g. grafana or ops-laptop)", name)
	}
	if !r.Valid() {
		return nil, fmt.Errorf("role %q is not a role (roles: monitor, operator, admin)", r)
	}
	ca, err := signingCA(dir, now)
	if err != nil {
		return nil, err
	}
	rec := filepath.Join(dir, IssuedDir, name+".crt")
	if old, err := readCert(rec); err != nil {
		return nil, err
	} else if old != nil {
		l, err := loadCRL(dir, ca)
		if err != nil {
			return nil, err
		}
		if !l.Revoked(old.SerialNumber) {
			return nil, fmt.Errorf("a certificate named %q was issued already (%s): revoke it first (cairn node revoke --pki %s %s) or pick another name", name, rec, dir, name)
		}
	}
	p := &PKI{Dir: dir, CA: ca, now: now}
	pair, err := p.sign(filepath.Join(IssuedDir, name), Request{CommonName: name, Usage: ClientAuth, Role: r}, ClientValidity)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(rec, pair.CertPEM, 0o644); err != nil {
		return nil, fmt.Errorf("recording the issued certificate: %w", err)
	}
	p.Client, p.Issued = pair, []string{filepath.Join(IssuedDir, name+".crt")}
	return p, nil
}

// Revocation is the outcome of Revoke.
type Revocation struct {
	// Cert is the revoked certificate.
	Cert *x509.Certificate
	// CRL is the PKI directory's crl.pem after the revocation.
	CRL *crl.List
	// Already is set when the certificate was revoked before; the CRL is
	// unchanged.
	Already bool
}

// Revoke adds the certificate called name to the CRL in dir: the one
// IssueClient recorded as issued/NAME.crt, or the builder's own client.crt
// when name is its common name (Ensure then issues a new one). The CRL is
// signed by the CA with the next CRL number and written to crl.pem; push it
// to nodes with POST /v1/crl, or bake it into the next image.
func Revoke(dir, name string, now time.Time) (*Revocation, error) {
	ca, err := signingCA(dir, now)
	if err != nil {
		return nil, err
	}
	cert, err := issuedCert(dir, name)
	if err != nil {
		return nil, err
	}
	old, err := loadCRL(dir, ca)
	if err != nil {
		return nil, err
	}
	if old.Revoked(cert.SerialNumber) {
		return &Revocation{Cert: cert, CRL: old, Already: true}, nil
	}
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(1),
		ThisUpdate: now.UTC().Truncate(time.Second),
		// Nodes ignore NextUpdate (see agent/api/crl); the CA's end is
		// as good as any and satisfies the format.
		NextUpdate: ca.Cert.NotAfter,
	}
	if old.Number != nil {
		tmpl.Number = new(big.Int).Add(old.Number, big.NewInt(1))
		prev, err := x509.ParseRevocationList(mustPEM(old.PEM))
		if err != nil {
			return nil, err
		}
		tmpl.RevokedCertificateEntries = prev.RevokedCertificateEntries
	}
	tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: cert.SerialNumber, RevocationTime: tmpl.ThisUpdate})
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("signing the CRL: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
	l, err := crl.Parse(data, ca.Cert)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, CRLFile), data, 0o644); err != nil {
		return nil, err
	}
	return &Revocation{Cert: cert, CRL: l}, nil
}

// LoadCRL returns the CRL in dir checked against ca, or nil when there is
// none.
func LoadCRL(dir string, ca *x509.Certificate) (*crl.List, error) {
	data, err := os.ReadFile(filepath.Join(dir, CRLFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	l, err := crl.Parse(data, ca)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (restore it from a backup; removing it un-revokes every certificate)", filepath.Join(dir, CRLFile), err)
	}
	return l, nil
}

// loadCRL is LoadCRL with an empty list for none.
func loadCRL(dir string, ca *Pair) (*crl.List, error) {
	l, err := LoadCRL(dir, ca.Cert)
	if l == nil && err == nil {
		l = &crl.List{}
	}
	return l, err
}

func mustPEM(data []byte) []byte {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil
	}
	return b.Bytes
}

// signingCA loads the CA of dir with its key.
func signingCA(dir string, now time.Time) (*Pair, error) {
	ca, err := LoadPair(dir, "ca", true)
	if err != nil {
		return nil, err
	}
	switch {
	case ca == nil:
		return nil, fmt.Errorf("%s holds no CA (ca.crt): point --pki at the PKI directory cairn build used (default pki)", dir)
	case ca.Key == nil:
		return nil, fmt.Errorf("%s is missing: restore the CA key from where it is kept to issue or revoke", filepath.Join(dir, "ca.key"))
	case now.After(ca.Cert.NotAfter):
		return nil, fmt.Errorf("%s expired on %s", filepath.Join(dir, "ca.crt"), ca.Cert.NotAfter.Format(time.DateOnly))
	}
	return ca, nil
}

// issuedCert finds the certificate called name: issued/NAME.crt, else
// client.crt if its common name is name.
func issuedCert(dir, name string) (*x509.Certificate, error) {
	if !clientName.MatchString(name) {
		return nil, fmt.Errorf("client name %q is not valid: letters, digits, '.', '_', '-', at most 64", name)
	}
	c, err := readCert(filepath.Join(dir, IssuedDir, name+".crt"))
	if c != nil || err != nil {
		return c, err
	}
	if c, err := readCert(filepath.Join(dir, "client.crt")); err == nil && c != nil && c.Subject.CommonName == name {
		return c, nil
	}
	return nil, fmt.Errorf("no certificate named %q in %s (issued ones are in %s; list them with ls)", name, dir, filepath.Join(dir, IssuedDir))
}

// readCert reads a PEM certificate, nil when the file is absent.
func readCert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c, err := parseCert(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
