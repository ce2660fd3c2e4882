package pki

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func testPKI(t testing.TB) *PKI {
	t.Helper()
	p, err := Ensure(filepath.Join(t.TempDir(), "pki"), Options{Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestWriteClientConfig(t *testing.T) {
	p := testPKI(t)
	path := filepath.Join(t.TempDir(), "out", "node.yaml")
	if err := WriteClientConfig(path, "https://edge-1:7443", "edge-1", p); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600 (it holds a private key)", st.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	for _, want := range []string{"# cairn node API client configuration", "server: https://edge-1:7443\n", "serverName: edge-1\n", "ca: |\n  -----BEGIN CERTIFICATE-----\n", "key: |\n  -----BEGIN PRIVATE KEY-----\n"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("config lacks %q:\n%s", want, data)
		}
	}
	c, err := LoadClientConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.CA != string(p.CA.CertPEM) || c.Cert != string(p.Client.CertPEM) || c.Key != string(p.Client.KeyPEM) || c.ServerName != "edge-1" {
		t.Errorf("round trip lost data: %+v", c)
	}
	if err := WriteClientConfig(path, "http://cairn-node:7443", "", p); err == nil {
		t.Error("an http:// server was accepted")
	}
	// cairn build's config names no node: clients check the host dialled.
	if err := WriteClientConfig(path, "https://cairn-node:7443", "", p); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); strings.Contains(string(data), "serverName") {
		t.Errorf("a config without a node name has serverName:\n%s", data)
	}
}

func TestParseClientConfig(t *testing.T) {
	p := testPKI(t)
	other := testPKI(t)
	good := ClientConfig{Server: "https://10.0.0.7:7443", ServerName: "edge-1", CA: string(p.CA.CertPEM), Cert: string(p.Client.CertPEM), Key: string(p.Client.KeyPEM)}
	encode := func(c ClientConfig) string {
		b, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	with := func(f func(c *ClientConfig)) string {
		c := good
		f(&c)
		return encode(c)
	}
	tests := []struct {
		name, in, wantErr string
	}{
		{"good", encode(good), ""},
		{"IPv6 server without port", with(func(c *ClientConfig) { c.Server = "https://[fd00::7]" }), ""},
		{"empty", "", "empty file"},
		{"not YAML", "{{{", "not a client config"},
		{"a list", "- a\n- b\n", "not a client config"},
		{"unknown key", encode(good) + "token: x\n", "field token not found"},
		{"key twice", encode(good) + "server: https://b\n", "already defined"},
		{"no server", with(func(c *ClientConfig) { c.Server = "" }), "server is missing"},
		{"http server", with(func(c *ClientConfig) { c.Server = "http://node:7443" }), "is not https://HOST[:PORT]"},
		{"server with path", with(func(c *ClientConfig) { c.Server = "https://node:7443/v1" }), "is not https://HOST[:PORT]"},
		{"bad port", with(func(c *ClientConfig) { c.Server = "https://node:99999" }), "not 1-65535"},
		{"no serverName", with(func(c *ClientConfig) { c.ServerName = "" }), ""},
		{"bad serverName", with(func(c *ClientConfig) { c.ServerName = "Edge 1" }), "serverName: node name"},
		{"no ca", with(func(c *ClientConfig) { c.CA = "" }), "ca holds no PEM certificate"},
		{"key as ca", with(func(c *ClientConfig) { c.CA = c.Key }), `ca: PEM block "PRIVATE KEY"`},
		{"no key", with(func(c *ClientConfig) { c.Key = "" }), "cert or key is missing"},
		{"key of another certificate", with(func(c *ClientConfig) { c.Key = string(other.Client.KeyPEM) }), "cert/key"},
		{"too large", strings.Repeat("#", maxConfigSize+1), "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseClientConfig([]byte(tt.in))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if _, _, err := c.TLS(); err != nil {
					t.Error(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// FuzzParseClientConfig feeds untrusted config files: parsing must not
// panic, and whatever parses must survive Marshal and parse again intact.
func FuzzParseClientConfig(f *testing.F) {
	p := testPKI(f)
	good := &ClientConfig{Server: "https://cairn-node:7443", ServerName: "edge-1", CA: string(p.CA.CertPEM), Cert: string(p.Client.CertPEM), Key: string(p.Client.KeyPEM)}
	b, err := good.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte("server: https://x\nserverName: y\nca: |\n  -----BEGIN CERTIFICATE-----\n  AA==\n  -----END CERTIFICATE-----\n"))
	f.Add([]byte("server: [1, 2]\n"))
	f.Add([]byte("&a [*a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseClientConfig(data)
		if err != nil {
			return
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed config: %v", err)
		}
		c2, err := ParseClientConfig(out)
		if err != nil {
			t.Fatalf("re-parse: %v\n%s", err, out)
		}
		if *c2 != *c {
			t.Fatalf("round trip changed the config:\n%+v\n%+v", c, c2)
		}
	})
}
