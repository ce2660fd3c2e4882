// Package crl is the node API's certificate revocation list: a PEM X.509
// CRL signed by the API's CA, listing the serials of client certificates
// that may no longer connect. `cairn node revoke` (builder/pki) makes it;
// the node reads it from its slot (baked in by the builder) and from the
// data partition (pushed with POST /v1/crl), keeps the one with the higher
// CRL number and refuses revoked clients at the TLS handshake.
//
//	st, err := crl.Open(ca, contract.APICRLBaked, contract.APICRLFile)
//	conf.VerifyConnection = st.VerifyConnection
//	err = st.Install(pemFromAdmin) // refused when older than the one held
//
// The list is hostile input to the node (it arrives over the network):
// Parse checks the signature before believing anything in it. A CRL's
// NextUpdate is ignored: a node without a working clock must not forget
// revocations, so a list stays in force until a newer one replaces it.
package crl

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"sync"

	"github.com/cairn-edge/cairn/agent/atomicfile"
)

// MaxSize bounds a CRL: ~60 bytes an entry, so room for ~15000 revocations.
const MaxSize = 1 << 20

// List is a verified CRL.
type List struct {
	// Number is the CRL number; a newer list has a higher one.
	Number *big.Int
	// PEM is the list as read.
	PEM     []byte
	revoked map[string]bool // serials, as big.Int.Text(16)
}

// Revoked reports whether serial is on the list.
func (l *List) Revoked(serial *big.Int) bool {
	return l != nil && serial != nil && l.revoked[serial.Text(16)]
}

// Len is the number of revoked serials.
func (l *List) Len() int { return len(l.revoked) }

// ErrOlder is what Install returns, wrapped, for a list no newer than the
// one held.
var ErrOlder = errors.New("not newer than the CRL the node holds")

// ErrInvalid is what Install returns, wrapped, for a list that does not
// parse or is not signed by the CA.
var ErrInvalid = errors.New("CRL refused")

// Parse reads one PEM X509 CRL block and checks that ca signed it and that
// it carries a CRL number.
func Parse(data []byte, ca *x509.Certificate) (*List, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("CRL is %d bytes, more than %d", len(data), MaxSize)
	}
	b, rest := pem.Decode(data)
	if b == nil || b.Type != "X509 CRL" {
		return nil, errors.New("not a PEM X509 CRL")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("CRL: more than one PEM block")
	}
	rl, err := x509.ParseRevocationList(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("CRL: %w", err)
	}
	if err := rl.CheckSignatureFrom(ca); err != nil {
		return nil, fmt.Errorf("CRL is not signed by the node API's CA: %w", err)
	}
	if rl.Number == nil || rl.Number.Sign() < 0 {
		return nil, errors.New("CRL has no CRL number")
	}
	l := &List{Number: rl.Number, PEM: data, revoked: make(map[string]bool, len(rl.RevokedCertificateEntries))}
	for _, e := range rl.RevokedCertificateEntries {
		if e.SerialNumber != nil {
			l.revoked[e.SerialNumber.Text(16)] = true
		}
	}
	return l, nil
}

// Store is the CRL a node holds. The zero of it is not usable: use Open.
type Store struct {
	ca    *x509.Certificate
	path  string // on the data partition, where Install writes
	mu    sync.RWMutex
	list  *List // nil: nothing revoked
	write func(path string, data []byte, perm fs.FileMode) error
}

// Open returns the store for ca: the newer of the CRLs at baked (in the
// slot, read-only) and path (on the data partition, written by Install).
// Absent files are no CRL. A file that does not parse is an error: the
// node must not serve clients it was told to refuse.
func Open(ca *x509.Certificate, baked, path string) (*Store, error) {
	s := &Store{ca: ca, path: path, write: atomicfile.WriteFile}
	for _, p := range []string{baked, path} {
		data, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		l, err := Parse(data, ca)
		if err != nil {
			return nil, fmt.Errorf("%s: %w (replace it with the PKI directory's crl.pem)", p, err)
		}
		if s.list == nil || l.Number.Cmp(s.list.Number) > 0 {
			s.list = l
		}
	}
	return s, nil
}

// Current is the list in force, nil when none.
func (s *Store) Current() *List {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.list
}

// Revoked reports whether serial is revoked.
func (s *Store) Revoked(serial *big.Int) bool { return s.Current().Revoked(serial) }

// Install verifies data, refuses it unless its number is higher than the
// held list's (ErrOlder: no rollback to a list that revoked less), writes
// it atomically to the data partition and puts it in force. The same list
// again is accepted and changes nothing.
func (s *Store) Install(data []byte) (*List, error) {
	l, err := Parse(data, s.ca)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.list; cur != nil {
		switch c := l.Number.Cmp(cur.Number); {
		case c == 0 && bytes.Equal(bytes.TrimSpace(l.PEM), bytes.TrimSpace(cur.PEM)):
			return cur, nil
		case c <= 0:
			return nil, fmt.Errorf("CRL number %s: %w (number %s): revoke with the PKI directory that made it, whose crl.pem is newer", l.Number, ErrOlder, cur.Number)
		}
	}
	if err := s.write(s.path, data, 0o644); err != nil {
		return nil, fmt.Errorf("storing the CRL: %w", err)
	}
	s.list = l
	return l, nil
}

// VerifyConnection is a tls.Config.VerifyConnection that refuses a client
// whose certificate is revoked, so it cannot even complete a handshake.
func (s *Store) VerifyConnection(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) > 0 && s.Revoked(cs.PeerCertificates[0].SerialNumber) {
		c := cs.PeerCertificates[0]
		return fmt.Errorf("client certificate %q (serial %s) is revoked", c.Subject.CommonName, c.SerialNumber.Text(16))
	}
	return nil
}
