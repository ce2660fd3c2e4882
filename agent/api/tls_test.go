package api

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
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
		{"no client certificate", e.clientWith(t, e.pki.CA, nil, pki.ServerName), "certificate required"},
		{"client certificate from another CA", e.clientWith(t, e.pki.CA, other.Client, pki.ServerName), "unknown certificate authority"},
		{"expired client certificate", e.clientWith(t, e.pki.CA, expired, pki.ServerName), "expired certificate"},
		// Anyone holding a node's disk has server.key: it must not open the API.
		{"server certificate as client", e.clientWith(t, e.pki.CA, e.pki.Server, pki.ServerName), "bad certificate"},
		{"wrong server name", e.clientWith(t, e.pki.CA, e.pki.Client, "other-node"), "certificate is valid for cairn-node, not other-node"},
		{"server from another CA", e.clientWith(t, other.CA, other.Client, pki.ServerName), "certificate signed by unknown authority"},
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
		c := e.clientWith(t, e.pki.CA, e.pki.Client, pki.ServerName)
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
	server, err := pki.Issue(p.CA, pki.Request{CommonName: pki.ServerName, Usage: pki.ServerAuth, Names: []string{pki.ServerName}, NotBefore: future, NotAfter: future.Add(time.Hour)})
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

func TestLoadServerTLS(t *testing.T) {
	p := sharedPKI(t)
	dir := t.TempDir()
	for _, f := range p.SlotFiles() {
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f.Path)), f.Data, f.Mode); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := LoadServerTLS(dir); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "server.key"), p.Client.KeyPEM, 0o600)
	if _, err := LoadServerTLS(dir); err == nil || !strings.Contains(err.Error(), "server.crt/server.key") {
		t.Errorf("mismatched key: err = %v", err)
	}
	os.Remove(filepath.Join(dir, "ca.crt"))
	if _, err := LoadServerTLS(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing ca.crt: err = %v", err)
	}
}
