package api

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"time"
)

// maxIdentityFile bounds what LoadServerTLS reads of each file: a PEM
// certificate or key is about 1 KiB.
const maxIdentityFile = 64 << 10

// ErrNoIdentity is what LoadServerTLS returns, wrapped, on a node that was
// never given its own identity.
var ErrNoIdentity = errors.New("this node has no identity of its own")

// ParseIdentity checks a node's identity: certPEM and keyPEM (from the
// node's boot partition, which anyone holding the card may have written)
// must be a pair, issued by the CA in caPEM for server use, for a name
// (the common name, also a DNS name of the certificate). It returns the
// certificate and that name.
func ParseIdentity(caPEM, certPEM, keyPEM []byte) (tls.Certificate, string, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return tls.Certificate{}, "", errors.New("ca.crt holds no PEM certificate")
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	leaf := cert.Leaf
	// Validity is the handshake's business (see ServerTLS's floor): here,
	// only who issued it and for what.
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: leaf.NotBefore.Add(time.Second), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return tls.Certificate{}, "", fmt.Errorf("not a node identity of this image's CA (%v): provision the node with the PKI directory the image was built from", err)
	}
	name := leaf.Subject.CommonName
	if name == "" || !slices.Contains(leaf.DNSNames, name) {
		return tls.Certificate{}, "", fmt.Errorf("certificate for %q does not carry its name as a DNS name: provision the node again (cairn provision)", name)
	}
	return cert, name, nil
}

// ServerTLS returns the node's TLS configuration: TLS 1.3 only, the
// node's identity (see ParseIdentity), and client certificates required
// and verified against the CA (for client use: a node's certificate taken
// from its card does not pass).
//
// Certificates are checked against the node's clock, but never against a
// time before the node's certificate was issued: a board without a
// real-time clock boots in 1970 until the network sets the time, and would
// otherwise refuse every client as not yet valid.
func ServerTLS(caPEM, certPEM, keyPEM []byte) (*tls.Config, error) {
	cert, _, err := ParseIdentity(caPEM, certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	floor := cert.Leaf.NotBefore
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		Time: func() time.Time {
			if now := time.Now(); now.After(floor) {
				return now
			}
			return floor
		},
	}, nil
}

// LoadServerTLS reads the CA certificate from caFile (in the slot: TLSDir's
// ca.crt) and the node's identity from certFile and keyFile (per-node files
// on the boot partition: contract.NodeCertFile, NodeKeyFile), and returns
// ServerTLS and the node's name. A node without an identity gets an error
// wrapping ErrNoIdentity that says how to give it one.
func LoadServerTLS(caFile, certFile, keyFile string) (*tls.Config, string, error) {
	var data [3][]byte
	for i, path := range []string{caFile, certFile, keyFile} {
		b, err := readCapped(path, maxIdentityFile)
		if errors.Is(err, fs.ErrNotExist) && i > 0 {
			return nil, "", fmt.Errorf("%w: %s is missing (issue one on the workstation: cairn provision --name NAME DISK)", ErrNoIdentity, path)
		}
		if err != nil {
			return nil, "", fmt.Errorf("node API credentials: %w", err)
		}
		data[i] = b
	}
	c, err := ServerTLS(data[0], data[1], data[2])
	if err != nil {
		return nil, "", fmt.Errorf("node identity %s: %w", certFile, err)
	}
	_, name, _ := ParseIdentity(data[0], data[1], data[2])
	return c, name, nil
}

// readCapped reads path, refusing one larger than max.
func readCapped(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: more than %d bytes, not a PEM file", path, max)
	}
	return b, nil
}

// ClientTLS returns a client's TLS configuration: TLS 1.3, the client
// certificate, and the node's certificate verified against pool for
// serverName, the node's name, whatever address is dialled (a node's
// address is often not known when it is provisioned). An empty serverName
// checks the host dialled.
func ClientTLS(pool *x509.CertPool, cert tls.Certificate, serverName string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		RootCAs:      pool,
		Certificates: []tls.Certificate{cert},
		ServerName:   serverName,
	}
}
