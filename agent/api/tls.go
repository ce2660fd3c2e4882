package api

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// ServerTLS returns the node's TLS configuration: TLS 1.3 only, the
// server certificate and key, and client certificates required and
// verified against the CA (for client use: a server certificate taken from
// a node's disk does not pass).
//
// Certificates are checked against the node's clock, but never against a
// time before the server certificate was issued: a board without a
// real-time clock boots in 1970 until the network sets the time, and would
// otherwise refuse every client as not yet valid.
func ServerTLS(caPEM, certPEM, keyPEM []byte) (*tls.Config, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("ca.crt holds no PEM certificate")
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("server.crt/server.key: %w", err)
	}
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

// LoadServerTLS reads ca.crt, server.crt and server.key from dir (TLSDir
// on a node) and returns ServerTLS.
func LoadServerTLS(dir string) (*tls.Config, error) {
	var data [3][]byte
	for i, name := range []string{"ca.crt", "server.crt", "server.key"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("node API credentials: %w (the image was built without them?)", err)
		}
		data[i] = b
	}
	c, err := ServerTLS(data[0], data[1], data[2])
	if err != nil {
		return nil, fmt.Errorf("node API credentials in %s: %w", dir, err)
	}
	return c, nil
}

// ClientTLS returns a client's TLS configuration: TLS 1.3, the client
// certificate, and the node's certificate verified against pool for
// serverName whatever address is dialled (node addresses are not known when
// images are built; every node's certificate carries the same name).
func ClientTLS(pool *x509.CertPool, cert tls.Certificate, serverName string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		RootCAs:      pool,
		Certificates: []tls.Certificate{cert},
		ServerName:   serverName,
	}
}
