package pki

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fresh returns a PKI directory Ensure filled at t0, and its files' content.
func fresh(t *testing.T) (string, map[string][]byte) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pki")
	if _, err := Ensure(dir, Options{Now: t0}); err != nil {
		t.Fatal(err)
	}
	return dir, readDir(t, dir)
}

func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = b
	}
	return files
}

func TestEnsureFresh(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	p, err := Ensure(dir, Options{Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Issued, []string{"ca.crt", "client.crt"}; !slices.Equal(got, want) {
		t.Errorf("Issued = %v, want %v", got, want)
	}
	node, err := p.IssueNode("edge-1", []string{"10.0.0.7", "edge.example"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := CertNames(node.Cert), []string{"10.0.0.7", "edge-1", "edge.example"}; !slices.Equal(got, want) {
		t.Errorf("node names = %v, want %v", got, want)
	}
	for _, c := range []struct {
		name     string
		cert     *x509.Certificate
		validity time.Duration
	}{
		{"ca", p.CA.Cert, CAValidity},
		{"node", node.Cert, CAValidity},
		{"client", p.Client.Cert, ClientValidity},
	} {
		if got, want := c.cert.NotAfter, t0.Add(c.validity); !got.Equal(want) {
			t.Errorf("%s NotAfter = %v, want %v", c.name, got, want)
		}
		if !c.cert.NotBefore.Before(t0) {
			t.Errorf("%s NotBefore = %v, not before %v", c.name, c.cert.NotBefore, t0)
		}
	}
	roots := x509.NewCertPool()
	roots.AddCert(p.CA.Cert)
	if _, err := p.Client.Cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: t0, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate: %v", err)
	}
	if _, err := node.Cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: t0, DNSName: "edge-1"}); err != nil {
		t.Errorf("node certificate: %v", err)
	}
	// A node's certificate lifted from its card must not pass as a client.
	if _, err := node.Cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: t0, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("the node certificate verifies as a client certificate")
	}
	if rec, err := os.ReadFile(filepath.Join(dir, "nodes", "edge-1.crt")); err != nil || !bytes.Equal(rec, node.CertPEM) {
		t.Errorf("nodes/edge-1.crt: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "nodes", "edge-1.key")); err == nil {
		t.Error("the PKI directory keeps the node's key: it belongs on the node only")
	}
	for name, mode := range map[string]os.FileMode{"ca.key": 0o600, "client.key": 0o600, "ca.crt": 0o644} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s mode = %v, want %v", name, st.Mode().Perm(), mode)
		}
	}
	var paths []string
	for _, f := range p.SlotFiles() {
		paths = append(paths, f.Mode.String()+" "+f.Path)
		if len(f.Data) == 0 {
			t.Errorf("%s is empty", f.Path)
		}
	}
	if got, want := strings.Join(paths, "|"), "-rw-r--r-- etc/cairn/api/ca.crt"; got != want {
		t.Errorf("SlotFiles = %s, want %s", got, want)
	}
}

// TestEnsureReuse covers a PKI directory found on disk: what is reused,
// what is reissued and what is refused.
func TestEnsureReuse(t *testing.T) {
	tests := []struct {
		name    string
		change  func(t *testing.T, dir string) // what happened to the directory since t0
		opts    Options
		issued  []string // nil: nothing may change on disk
		wantErr string
		warn    string
	}{
		{name: "same directory, same inputs", opts: Options{Now: t0.Add(24 * time.Hour)}},
		{
			name:    "CA key kept offline but the client certificate must be renewed",
			change:  func(t *testing.T, dir string) { rm(t, dir, "ca.key") },
			opts:    Options{Now: t0.Add(ClientValidity)},
			wantErr: "ca.key is missing",
		},
		{
			name:    "client key without certificate",
			change:  func(t *testing.T, dir string) { rm(t, dir, "client.crt") },
			opts:    Options{Now: t0},
			wantErr: "client.key exists without",
		},
		{
			name:    "keys swapped",
			change:  func(t *testing.T, dir string) { cp(t, dir, "ca.key", "client.key") },
			opts:    Options{Now: t0},
			wantErr: "client.key is not the key of",
		},
		{
			name: "client certificate from another PKI",
			change: func(t *testing.T, dir string) {
				_, other := fresh(t)
				os.WriteFile(filepath.Join(dir, "client.crt"), other["client.crt"], 0o644)
				os.WriteFile(filepath.Join(dir, "client.key"), other["client.key"], 0o600)
			},
			opts:    Options{Now: t0},
			wantErr: "client.crt does not fit",
		},
		{
			name: "a shared server key left from before per-node identities",
			change: func(t *testing.T, dir string) {
				cp(t, dir, "client.crt", "server.crt")
				cp(t, dir, "client.key", "server.key")
			},
			opts: Options{Now: t0},
			warn: "server.key is no longer used",
		},
		{
			name:   "CA key kept offline",
			change: func(t *testing.T, dir string) { rm(t, dir, "ca.key") },
			opts:   Options{Now: t0},
		},
		{
			name:   "client certificate near its end is renewed",
			opts:   Options{Now: t0.Add(ClientValidity - 10*24*time.Hour)},
			issued: []string{"client.crt"},
		},
		{
			name:    "expired CA",
			opts:    Options{Now: t0.Add(CAValidity + time.Hour)},
			wantErr: "ca.crt expired on",
		},
		{
			name:    "CA lost",
			change:  func(t *testing.T, dir string) { rm(t, dir, "ca.crt"); rm(t, dir, "ca.key") },
			opts:    Options{Now: t0},
			wantErr: "no ca.crt",
		},
		{
			name:    "garbage certificate",
			change:  func(t *testing.T, dir string) { os.WriteFile(filepath.Join(dir, "client.crt"), []byte("hello"), 0o644) },
			opts:    Options{Now: t0},
			wantErr: "client.crt: not a PEM CERTIFICATE",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, _ := fresh(t)
			if tt.change != nil {
				tt.change(t, dir)
			}
			before := readDir(t, dir)
			p, err := Ensure(dir, tt.opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if after := readDir(t, dir); !sameFiles(before, after, nil) {
					t.Error("a failed Ensure changed the directory")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.Issued, tt.issued) {
				t.Errorf("Issued = %v, want %v", p.Issued, tt.issued)
			}
			if !sameFiles(before, readDir(t, dir), tt.issued) {
				t.Errorf("files other than %v changed", tt.issued)
			}
			if got := strings.Join(p.Warnings, "\n"); (tt.warn == "") != (got == "") || !strings.Contains(got, tt.warn) {
				t.Errorf("Warnings = %q, want %q", got, tt.warn)
			}
		})
	}
}

// sameFiles reports whether a and b hold the same files with the same
// content, except the pairs named in changed (which must differ).
func sameFiles(a, b map[string][]byte, changed []string) bool {
	if len(a) != len(b) {
		return false
	}
	for name, data := range a {
		pair := strings.TrimSuffix(strings.TrimSuffix(name, ".key"), ".crt") + ".crt"
		if bytes.Equal(data, b[name]) == slices.Contains(changed, pair) {
			return false
		}
	}
	return true
}

func rm(t *testing.T, dir, name string) {
	t.Helper()
	if err := os.Remove(filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

func cp(t *testing.T, dir, from, to string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, from))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, to), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestClientValidFromCAStart: a client certificate renewed a year on is
// valid from the CA's start, so a node whose clock is behind (no
// real-time clock, offline) but not before its image's build accepts it.
func TestClientValidFromCAStart(t *testing.T) {
	dir, _ := fresh(t)
	p, err := Ensure(dir, Options{Now: t0.Add(ClientValidity)})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Client.Cert.NotBefore.Equal(p.CA.Cert.NotBefore) {
		t.Errorf("renewed client certificate starts %v, want the CA's start %v", p.Client.Cert.NotBefore, p.CA.Cert.NotBefore)
	}
	node, err := p.IssueNode("edge-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !node.Cert.NotBefore.After(p.CA.Cert.NotBefore) {
		t.Errorf("a node certificate starts %v, want its issue time", node.Cert.NotBefore)
	}
}
