package pki

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cairn-edge/cairn/agent/atomicfile"

	"gopkg.in/yaml.v3"
)

// ClientConfig is what `cairn node` needs to reach a node, stored as YAML
// like a kubeconfig, with the PEM blocks inline:
//
//	# cairn node API client configuration (cairn node --config FILE status)
//	server: https://edge-1:7443
//	serverName: edge-1
//	ca: |
//	  -----BEGIN CERTIFICATE-----
//	  …
//	cert: |
//	  -----BEGIN CERTIFICATE-----
//	  …
//	key: |
//	  -----BEGIN PRIVATE KEY-----
//	  …
//
// server is where to connect (cairn node --server overrides its host, as
// each node has its own address); serverName, when set, is the node's
// name, which its certificate must carry whatever address is dialled
// (cairn provision writes one config per node so); when empty, the
// certificate must carry the host dialled, as for any HTTPS client.
type ClientConfig struct {
	Server     string `yaml:"server"`
	ServerName string `yaml:"serverName,omitempty"`
	CA         string `yaml:"ca"`
	Cert       string `yaml:"cert"`
	Key        string `yaml:"key"`
}

// maxConfigSize bounds what ParseClientConfig reads; a real file is ~2 KiB.
const maxConfigSize = 64 << 10

// WriteClientConfig writes the client config for p to path (mode 0600: it
// holds the client's private key). server is https://HOST[:PORT];
// serverName is the node's name, or "" to check the host dialled.
func WriteClientConfig(path, server, serverName string, p *PKI) error {
	c := &ClientConfig{
		Server:     server,
		ServerName: serverName,
		CA:         string(p.CA.CertPEM),
		Cert:       string(p.Client.CertPEM),
		Key:        string(p.Client.KeyPEM),
	}
	if err := c.Validate(); err != nil {
		return err
	}
	data, err := c.Marshal()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, data, 0o600)
}

// Marshal encodes c as YAML, PEM blocks as literal blocks.
func (c *ClientConfig) Marshal() ([]byte, error) {
	str := func(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: v} }
	lit := func(v string) *yaml.Node {
		return &yaml.Node{Kind: yaml.ScalarNode, Style: yaml.LiteralStyle, Value: v}
	}
	key := func(k string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: k} }
	first := key("server")
	first.HeadComment = "cairn node API client configuration: cairn node --config FILE status\nIt holds a private key: keep it like a password."
	doc := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{first, str(c.Server)}}
	if c.ServerName != "" {
		doc.Content = append(doc.Content, key("serverName"), str(c.ServerName))
	}
	doc.Content = append(doc.Content, key("ca"), lit(c.CA), key("cert"), lit(c.Cert), key("key"), lit(c.Key))
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// LoadClientConfig reads and checks a client config file.
func LoadClientConfig(path string) (*ClientConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("client config: %w (pass the node.yaml written next to the image by cairn build)", err)
	}
	c, err := ParseClientConfig(data)
	if err != nil {
		return nil, fmt.Errorf("client config %s: %w", path, err)
	}
	return c, nil
}

// ParseClientConfig decodes and checks a client config. The input is
// untrusted: unknown keys, missing fields, a server that is not an https
// URL and PEM that does not parse (or a key that is not the certificate's)
// are errors.
func ParseClientConfig(data []byte) (*ClientConfig, error) {
	if len(data) > maxConfigSize {
		return nil, fmt.Errorf("%d bytes is too large for a client config (at most %d)", len(data), maxConfigSize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var c ClientConfig
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty file")
		}
		return nil, fmt.Errorf("not a client config: %v", err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate checks every field.
func (c *ClientConfig) Validate() error {
	if _, err := ParseServer(c.Server); err != nil {
		return err
	}
	if c.ServerName != "" {
		if _, err := NodeNames(c.ServerName, nil); err != nil {
			return fmt.Errorf("serverName: %w", err)
		}
	}
	_, _, err := c.TLS()
	return err
}

// TLS returns the parsed credentials: the CA pool and the client certificate.
func (c *ClientConfig) TLS() (*x509.CertPool, tls.Certificate, error) {
	pool, err := certPool(c.CA)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	if c.Cert == "" || c.Key == "" {
		return nil, tls.Certificate{}, errors.New("cert or key is missing (the client certificate and its key, PEM)")
	}
	cert, err := tls.X509KeyPair([]byte(c.Cert), []byte(c.Key))
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("cert/key: %v", err)
	}
	return pool, cert, nil
}

func certPool(data string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	rest := []byte(data)
	n := 0
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("ca: PEM block %q is not a CERTIFICATE", b.Type)
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("ca: %v", err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, errors.New("ca holds no PEM certificate")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("ca: text after the last PEM certificate")
	}
	return pool, nil
}

// ParseServer checks a server address, https://HOST[:PORT] with nothing
// after, and returns it as a URL.
func ParseServer(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("server is missing (https://HOST:PORT)")
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("server %q: %v", s, err)
	}
	if u.Scheme != "https" || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return nil, fmt.Errorf("server %q is not https://HOST[:PORT]", s)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("server %q: port %q is not 1-65535", s, p)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return nil, fmt.Errorf("server %q: empty port", s)
	}
	if h := u.Hostname(); h == "" || strings.ContainsAny(h, " \t/\\") {
		return nil, fmt.Errorf("server %q: bad host", s)
	} else if strings.Contains(h, ":") && net.ParseIP(h) == nil {
		return nil, fmt.Errorf("server %q: bad IPv6 address", s)
	}
	u.Path = ""
	return u, nil
}
