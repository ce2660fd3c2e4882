package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/builder/pki"
)

var tempDirs []string

func mkTemp() (string, error) {
	d, err := os.MkdirTemp("", "cairn-api-test")
	if err == nil {
		tempDirs = append(tempDirs, d)
	}
	return filepath.Join(d, "pki"), err
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range tempDirs {
		os.RemoveAll(d)
	}
	os.Exit(code)
}

func tlsCert(t testing.TB, p *pki.Pair) tls.Certificate {
	t.Helper()
	if p == nil {
		return tls.Certificate{}
	}
	c, err := tls.X509KeyPair(p.CertPEM, p.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSlotDirMatchesBuilder(t *testing.T) {
	if pki.SlotDir != TLSDir {
		t.Errorf("builder puts the credentials in %s, the agent reads %s", pki.SlotDir, TLSDir)
	}
	var files []string
	for _, f := range sharedPKI(t).SlotFiles() {
		files = append(files, f.Path)
		if bytes.Contains(f.Data, []byte("PRIVATE KEY")) {
			t.Errorf("%s holds a private key: no key may be in an image", f.Path)
		}
	}
	if want := strings.TrimPrefix(CAFile, "/"); !slices.Contains(files, want) {
		t.Errorf("slot files %v lack %s", files, want)
	}
}

// TestMutualTLS dials the server with every kind of client it must refuse,
// and one it must serve.
func TestMutualTLS(t *testing.T) {
	e := start(t)
	now := time.Now()
	other, err := pki.Ensure(filepath.Join(t.TempDir(), "other"), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	expired, err := pki.Issue(e.pki.CA, pki.Request{CommonName: "old-admin", Usage: pki.ClientAuth, NotBefore: now.Add(-2 * 365 * 24 * time.Hour), NotAfter: now.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		client  *Client
		wantErr string // "" means served
	}{
		{"valid client", e.client, ""},
		{"no client certificate", e.clientWith(t, e.pki.CA, nil, testNode), "certificate required"},
		{"client certificate from another CA", e.clientWith(t, e.pki.CA, other.Client, testNode), "unknown certificate authority"},
		{"expired client certificate", e.clientWith(t, e.pki.CA, expired, testNode), "expired certificate"},
		// Anyone holding a node's card has its key: it must not open the API.
		{"server certificate as client", e.clientWith(t, e.pki.CA, e.identity, testNode), "bad certificate"},
		// Another node's config (or --name) asks for another node: refused.
		{"another node's name", e.clientWith(t, e.pki.CA, e.pki.Client, "edge-2"), "certificate is valid for edge-1, not edge-2"},
		{"server from another CA", e.clientWith(t, other.CA, other.Client, testNode), "certificate signed by unknown authority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := tt.client.Status(context.Background())
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if st.Hostname != "edge-1" || len(st.Services) != 2 {
					t.Errorf("status = %+v", st)
				}
				return
			}
			if err == nil {
				t.Fatal("served")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	t.Run("TLS 1.2", func(t *testing.T) {
		c := e.clientWith(t, e.pki.CA, e.pki.Client, testNode)
		conf := c.http.Transport.(*http.Transport).TLSClientConfig
		conf.MinVersion, conf.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
		if _, err := c.Status(context.Background()); err == nil || !strings.Contains(err.Error(), "protocol version") {
			t.Errorf("err = %v, want a protocol version error", err)
		}
	})
}

// TestHandlerWithoutTLS serves the handler over plain HTTP, as a mistake
// would: it still refuses.
func TestHandlerWithoutTLS(t *testing.T) {
	srv := NewServer(&fakeNode{}, &fakeServices{}, WithLogger(discard()))
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/v1/status", nil))
	if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "client certificate is required") {
		t.Errorf("got %d %s", rec.Code, rec.Body)
	}
}

// TestClockFloor: a node whose clock is behind (no RTC) checks
// certificates at the server certificate's issue time at the earliest.
func TestClockFloor(t *testing.T) {
	p := sharedPKI(t)
	future := time.Now().Add(48 * time.Hour)
	server, err := pki.Issue(p.CA, pki.Request{CommonName: testNode, Usage: pki.ServerAuth, Names: []string{testNode}, NotBefore: future, NotAfter: future.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	conf, err := ServerTLS(p.CA.CertPEM, server.CertPEM, server.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if got := conf.Time(); got.Before(server.Cert.NotBefore) {
		t.Errorf("Time() = %v, before the server certificate's NotBefore %v", got, server.Cert.NotBefore)
	}
	if conf.MinVersion != tls.VersionTLS13 || conf.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("MinVersion %x ClientAuth %v", conf.MinVersion, conf.ClientAuth)
	}
}

// TestLoadServerTLS reads the CA from the slot and the identity from the
// per-node files, and refuses every identity but the node's own.
func TestLoadServerTLS(t *testing.T) {
	p := sharedPKI(t)
	other, err := pki.Ensure(filepath.Join(t.TempDir(), "other"), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	otherNode, err := other.IssueNode("edge-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	noName, err := pki.Issue(p.CA, pki.Request{CommonName: "edge-9", Usage: pki.ServerAuth, Names: []string{"10.0.0.9"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.crt")
	os.WriteFile(ca, p.CA.CertPEM, 0o644)
	tests := []struct {
		name      string
		cert, key []byte
		want      string // "" means loaded
	}{
		{"the node's own", testIdentity.CertPEM, testIdentity.KeyPEM, ""},
		{"no identity", nil, nil, "no identity of its own"},
		{"key of another certificate", testIdentity.CertPEM, p.Client.KeyPEM, "private key does not match"},
		{"identity of another CA", otherNode.CertPEM, otherNode.KeyPEM, "not a node identity of this image's CA"},
		{"a client certificate", p.Client.CertPEM, p.Client.KeyPEM, "not a node identity of this image's CA"},
		{"a certificate without its name", noName.CertPEM, noName.KeyPEM, "does not carry its name"},
		{"a huge file", bytes.Repeat([]byte("A"), 1<<20), testIdentity.KeyPEM, "not a PEM file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert, key := filepath.Join(t.TempDir(), "cairn-node.crt"), filepath.Join(t.TempDir(), "cairn-node.key")
			if tt.cert != nil {
				os.WriteFile(cert, tt.cert, 0o600)
				os.WriteFile(key, tt.key, 0o600)
			}
			conf, name, err := LoadServerTLS(ca, cert, key)
			if tt.want == "" {
				if err != nil || name != testNode || conf == nil {
					t.Fatalf("LoadServerTLS = %q, %v", name, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
			if tt.cert == nil && !errors.Is(err, ErrNoIdentity) {
				t.Errorf("err = %v, want ErrNoIdentity", err)
			}
		})
	}
	if _, _, err := LoadServerTLS(filepath.Join(dir, "missing.crt"), filepath.Join(dir, "x"), filepath.Join(dir, "y")); !errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrNoIdentity) {
		t.Errorf("missing ca.crt: err = %v", err)
	}
}

// FuzzParseIdentity: the per-node files are written by whoever holds the
// card; nothing in them may crash the agent or pass unless the CA issued it.
func FuzzParseIdentity(f *testing.F) {
	p := sharedPKI(f)
	f.Add(testIdentity.CertPEM, testIdentity.KeyPEM)
	f.Add(p.Client.CertPEM, p.Client.KeyPEM)
	f.Add(testIdentity.CertPEM, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, cert, key []byte) {
		c, name, err := ParseIdentity(p.CA.CertPEM, cert, key)
		if err != nil {
			return
		}
		if name == "" || c.Leaf == nil || c.Leaf.CheckSignatureFrom(p.CA.Cert) != nil {
			t.Fatalf("accepted an identity the CA did not issue: %q", name)
		}
	})
}
