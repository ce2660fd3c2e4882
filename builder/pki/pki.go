// Package pki makes the credentials of the node API on the workstation:
// a CA, the client identity `cairn node` uses, and each node's own server
// identity, issued when the node is provisioned (cairn provision, and
// cairn flash and the installer through it). They live in a PKI directory
// that is reused when it exists, so the same directory in gives the same
// image out; only what is missing (or no longer fits) is issued.
//
//	p, err := pki.Ensure("pki", pki.Options{})
//	for _, f := range p.SlotFiles() { tree.File(f.Path, f.Mode, f.Data) }
//	id, err := p.IssueNode("edge-1", nil) // onto that node's boot partition
//	err = pki.WriteClientConfig("edge-1.node.yaml", "https://edge-1:7443", "edge-1", p)
//
// The directory holds PEM files:
//
//	ca.crt ca.key          the CA (ca.key never enters an image; it may be moved offline
//	                       between provisioning runs)
//	client.crt client.key  the operator's identity (role admin), copied into client configs
//	nodes/NAME.crt         the certificate issued to node NAME (its key is only on
//	                       that node's boot partition)
//	issued/NAME.crt        the client certificates `cairn node issue` made, by name, to revoke them by
//	crl.pem                the revocation list `cairn node revoke` keeps, baked into images
//
// An image carries only ca.crt (and crl.pem): no node's private key is in
// any image, so a card or image file read by someone gives them no node
// identity but the one provisioned onto that card.
//
// Keys are ECDSA P-256: every TLS stack and tool an operator may point at
// the node (curl, OpenSSL, Prometheus, browsers, TPM 2.0 and HSM-held keys)
// accepts it, where Ed25519 certificates are still refused by browsers and
// most hardware. Signing cost is irrelevant at these volumes.
package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/cairn-edge/cairn/agent/api/crl"
	"github.com/cairn-edge/cairn/agent/api/role"
	"github.com/cairn-edge/cairn/agent/atomicfile"
	"github.com/cairn-edge/cairn/agent/contract"
)

// DefaultNodeName is the node name a client config written by cairn build
// expects, until a node is provisioned with its own (cairn provision
// --name). Nodes never carry it: a client using such a config must say
// which node it means (cairn node --name).
const DefaultNodeName = "cairn-node"

// SlotDir is where the CA certificate lives in a root slot; the agent
// reads it from there (agent/api.TLSDir).
const SlotDir = contract.APITLSDir

// Validity periods. A node's certificate is on its boot partition, so
// renewing it means visiting the card: it lasts as long as the CA, so that
// a box left alone for years keeps its management API (the one way to
// update it). The client certificate is on no node and the builder renews
// it for free, so it is short to bound the damage of a leaked client config.
const (
	CAValidity     = 10 * 365 * 24 * time.Hour
	NodeValidity   = CAValidity
	ClientValidity = 365 * 24 * time.Hour
	// renewClientBefore is how long before expiry the client certificate is reissued.
	renewClientBefore = 30 * 24 * time.Hour
	// backdate covers clocks a little behind the builder's.
	backdate = time.Hour
)

// Pair is a certificate and its private key.
type Pair struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
	KeyPEM  []byte
}

// Usage is what an issued certificate may be used for.
type Usage int

const (
	// ServerAuth certificates identify a node to clients.
	ServerAuth Usage = iota
	// ClientAuth certificates identify an operator to nodes.
	ClientAuth
)

// Request describes a certificate to issue.
type Request struct {
	CommonName string
	Usage      Usage
	// Names are DNS names or IP addresses (server certificates only).
	Names     []string
	NotBefore time.Time
	NotAfter  time.Time
	// Role is what a client may do on the node (client certificates only;
	// see agent/api/role): carried as the Subject Organization.
	Role role.Role
}

// NewCA makes a self-signed CA valid from now-1h for validity.
func NewCA(commonName string, now time.Time, validity time.Duration) (*Pair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-backdate).UTC().Truncate(time.Second),
		NotAfter:              now.Add(validity).UTC().Truncate(time.Second),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	return sign(tmpl, tmpl, key, key)
}

// Issue signs a certificate for req with ca.
func Issue(ca *Pair, req Request) (*Pair, error) {
	if ca.Key == nil {
		return nil, errors.New("the CA's private key is not available")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: req.CommonName},
		NotBefore:             req.NotBefore.UTC().Truncate(time.Second),
		NotAfter:              req.NotAfter.UTC().Truncate(time.Second),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	switch req.Usage {
	case ServerAuth:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		for _, n := range req.Names {
			if ip := net.ParseIP(n); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, n)
			}
		}
	case ClientAuth:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		if req.Role != "" {
			tmpl.Subject.Organization = role.Subject(req.Role)
		}
	}
	return sign(tmpl, ca.Cert, key, ca.Key)
}

func sign(tmpl, parent *x509.Certificate, key *ecdsa.PrivateKey, parentKey crypto.Signer) (*Pair, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	ski := sha256.Sum256(pub)
	tmpl.SubjectKeyId = ski[:20]
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &Pair{
		Cert:    cert,
		Key:     key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// Options tune Ensure.
type Options struct {
	// ClientName is the client certificate's common name, shown in the
	// node's request log; "cairn-admin" when empty.
	ClientName string
	// Now is the time validity is checked and counted from; time.Now() when zero.
	Now time.Time
}

// PKI is the content of a PKI directory after Ensure.
type PKI struct {
	Dir    string
	CA     *Pair // CA.Key is nil when ca.key is absent (kept offline)
	Client *Pair
	// CRL is crl.pem, nil when nothing was ever revoked.
	CRL *crl.List
	// Issued names the files Ensure wrote, e.g. "client.crt".
	Issued []string
	// Warnings are problems that do not stop a build (a leftover shared
	// server key); the builder logs them.
	Warnings []string
	// now is Ensure's time, from which IssueNode counts validity.
	now time.Time
}

// File is a file for the root slot.
type File struct {
	Path string // relative to the slot root, e.g. "etc/cairn/api/ca.crt"
	Mode fs.FileMode
	Data []byte
}

// SlotFiles are the files the builder puts into the root slot: the CA
// certificate, to verify clients and the node's own identity (no key), and
// the revocation list when there is one.
func (p *PKI) SlotFiles() []File {
	dir := strings.TrimPrefix(SlotDir, "/")
	files := []File{
		{Path: dir + "/ca.crt", Mode: 0o644, Data: p.CA.CertPEM},
	}
	if p.CRL != nil {
		files = append(files, File{Path: contract.SlotPath(contract.APICRLBaked), Mode: 0o644, Data: p.CRL.PEM})
	}
	return files
}

// dnsName is what we accept as a DNS name in a certificate (no wildcards).
var dnsName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)

// NodeNames checks a node's name and the extra names (DNS names or IP
// addresses) its certificate should carry, and returns them all,
// deduplicated and sorted.
func NodeNames(name string, extra []string) ([]string, error) {
	if len(name) > 63 || !dnsName.MatchString(name) || strings.Contains(name, ".") {
		return nil, fmt.Errorf("node name %q is not a lowercase host name of letters, digits and '-' (e.g. edge-1)", name)
	}
	names := []string{name}
	for _, n := range extra {
		if ip := net.ParseIP(n); ip != nil {
			names = append(names, ip.String())
			continue
		}
		if len(n) > 253 || !dnsName.MatchString(n) {
			return nil, fmt.Errorf("node address %q is neither an IP address nor a lowercase DNS name", n)
		}
		names = append(names, n)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// CertNames are the DNS names and IP addresses a certificate is for,
// sorted, without repeats.
func CertNames(c *x509.Certificate) []string {
	names := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// Ensure loads the PKI in dir, creating dir and issuing whatever is
// missing: the CA when neither ca.crt nor ca.key exists, the client
// certificate when it is missing, carries no admin role (made before
// roles), is revoked or expires within 30 days. Everything it
// reuses is checked (key matches certificate, issued by the CA, right
// usage); a PKI that cannot be used is an error naming the file and the fix,
// never silently replaced.
func Ensure(dir string, opts Options) (*PKI, error) {
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	clientName := opts.ClientName
	if clientName == "" {
		clientName = "cairn-admin"
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("PKI directory: %w", err)
	}
	p := &PKI{Dir: dir, now: now}

	// The CA.
	ca, err := LoadPair(dir, "ca", true)
	if err != nil {
		return nil, err
	}
	if ca == nil {
		if exists(filepath.Join(dir, "client.crt")) {
			return nil, fmt.Errorf("PKI %s has certificates but no ca.crt: restore ca.crt and ca.key, or empty the directory to start a new PKI (nodes built from the old one will refuse the new client)", dir)
		}
		if ca, err = NewCA("cairn node API CA", now, CAValidity); err != nil {
			return nil, err
		}
		if err := p.write("ca", ca); err != nil {
			return nil, err
		}
	}
	if !ca.Cert.IsCA || ca.Cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("%s is not a CA certificate: replace it or empty %s to start a new PKI", filepath.Join(dir, "ca.crt"), dir)
	}
	if now.After(ca.Cert.NotAfter) {
		return nil, fmt.Errorf("%s expired on %s: empty %s to start a new PKI (every node needs an update built from it)", filepath.Join(dir, "ca.crt"), ca.Cert.NotAfter.Format(time.DateOnly), dir)
	}
	p.CA = ca
	if p.CRL, err = LoadCRL(dir, ca.Cert); err != nil {
		return nil, err
	}
	if exists(filepath.Join(dir, "server.key")) {
		p.Warnings = append(p.Warnings, fmt.Sprintf("%s is no longer used: every node gets its own identity when provisioned (cairn provision --name NAME DISK); remove server.crt and server.key", filepath.Join(dir, "server.key")))
	}

	// The client: not part of any image, so renewing it costs nothing.
	client, err := LoadPair(dir, "client", false)
	if err != nil {
		return nil, err
	}
	if client != nil {
		if err := checkIssued(dir, "client", client, ca, x509.ExtKeyUsageClientAuth); err != nil {
			return nil, err
		}
		if r, err := role.Of(client.Cert); err != nil || r != role.Admin {
			client = nil // made before roles: nodes refuse it now
		} else if p.CRL.Revoked(client.Cert.SerialNumber) {
			client = nil // cairn node revoke revoked it
		} else if now.Add(renewClientBefore).After(client.Cert.NotAfter) {
			client = nil
		}
	}
	if client == nil {
		if client, err = p.issue("client", Request{CommonName: clientName, Usage: ClientAuth, Role: role.Admin}, ClientValidity); err != nil {
			return nil, err
		}
	}
	p.Client = client
	return p, nil
}

// issue signs req with the CA for validity from p's time (at most to the
// CA's end) and writes it as name.crt and name.key.
func (p *PKI) issue(name string, req Request, validity time.Duration) (*Pair, error) {
	pair, err := p.sign(name, req, validity)
	if err != nil {
		return nil, err
	}
	return pair, p.write(name, pair)
}

// sign signs req with the CA for validity from p's time, at most to the CA's end.
func (p *PKI) sign(name string, req Request, validity time.Duration) (*Pair, error) {
	ca := p.CA
	if ca.Key == nil {
		return nil, fmt.Errorf("cannot issue %s: %s is missing (restore it from where the CA key is kept)", filepath.Join(p.Dir, name+".crt"), filepath.Join(p.Dir, "ca.key"))
	}
	req.NotBefore = p.now.Add(-backdate)
	if req.Usage == ClientAuth {
		// A client certificate is valid from the CA's start: a node
		// whose clock is behind (no real-time clock, offline since its
		// last boot) never runs earlier than its image's build, hence the
		// CA's start, so its administrator always gets in, to set it.
		req.NotBefore = ca.Cert.NotBefore
	}
	req.NotAfter = p.now.Add(validity)
	if req.NotAfter.After(ca.Cert.NotAfter) {
		req.NotAfter = ca.Cert.NotAfter
	}
	return Issue(ca, req)
}

// IssueNode issues node name's own server identity, for name and the
// extra DNS names or IP addresses, and records its certificate as
// nodes/NAME.crt in the PKI directory. The key is returned, never kept:
// it belongs on that node's boot partition only.
func (p *PKI) IssueNode(name string, extra []string) (*Pair, error) {
	names, err := NodeNames(name, extra)
	if err != nil {
		return nil, err
	}
	pair, err := p.sign("nodes/"+name, Request{CommonName: name, Usage: ServerAuth, Names: names}, NodeValidity)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(p.Dir, "nodes"), 0o700); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(p.Dir, "nodes", name+".crt"), pair.CertPEM, 0o644); err != nil {
		return nil, err
	}
	return pair, nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// LoadPair reads NAME.crt and NAME.key from dir. It returns nil when both
// are absent; a lone key is an error, and so is a lone certificate unless
// keyOptional (the CA key may be kept offline).
func LoadPair(dir, name string, keyOptional bool) (*Pair, error) {
	crtPath, keyPath := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	certPEM, errC := os.ReadFile(crtPath)
	keyPEM, errK := os.ReadFile(keyPath)
	switch {
	case errC != nil && !errors.Is(errC, fs.ErrNotExist):
		return nil, errC
	case errK != nil && !errors.Is(errK, fs.ErrNotExist):
		return nil, errK
	case errC != nil && errK != nil:
		return nil, nil
	case errC != nil:
		return nil, fmt.Errorf("%s exists without %s: restore %s.crt or remove %s.key to issue a new pair", keyPath, crtPath, name, name)
	case errK != nil && !keyOptional:
		return nil, fmt.Errorf("%s exists without %s: restore %s.key or remove %s.crt to issue a new pair", crtPath, keyPath, name, name)
	}
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", crtPath, err)
	}
	pair := &Pair{Cert: cert, CertPEM: certPEM}
	if errK != nil {
		return pair, nil
	}
	key, err := ParseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	if !matches(cert, key) {
		return nil, fmt.Errorf("%s is not the key of %s: restore the right pair or remove both to issue a new one", keyPath, crtPath)
	}
	pair.Key, pair.KeyPEM = key, keyPEM
	return pair, nil
}

// checkIssued checks that pair was issued by ca for usage, whatever the time.
func checkIssued(dir, name string, pair, ca *Pair, usage x509.ExtKeyUsage) error {
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	_, err := pair.Cert.Verify(x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: pair.Cert.NotBefore.Add(time.Second),
		KeyUsages:   []x509.ExtKeyUsage{usage},
	})
	if err != nil {
		return fmt.Errorf("%s does not fit %s (%v): remove %s.crt and %s.key to issue a new pair", filepath.Join(dir, name+".crt"), filepath.Join(dir, "ca.crt"), err, name, name)
	}
	return nil
}

func parseCert(data []byte) (*x509.Certificate, error) {
	b, rest := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("not a PEM CERTIFICATE")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("more than one PEM block")
	}
	return x509.ParseCertificate(b.Bytes)
}

// ParseKey reads a PEM private key: PKCS#8 (what we write), SEC 1 EC or PKCS#1.
func ParseKey(data []byte) (crypto.Signer, error) {
	b, rest := pem.Decode(data)
	if b == nil {
		return nil, errors.New("not a PEM private key")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("more than one PEM block")
	}
	var key any
	var err error
	switch b.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", b.Type)
	}
	if err != nil {
		return nil, err
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported private key type %T", key)
	}
	return s, nil
}

func matches(cert *x509.Certificate, key crypto.Signer) bool {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(cert.PublicKey)
}

// write stores a pair atomically: certificates 0644, keys 0600.
func (p *PKI) write(name string, pair *Pair) error {
	if err := atomicfile.WriteFile(filepath.Join(p.Dir, name+".key"), pair.KeyPEM, 0o600); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(p.Dir, name+".crt"), pair.CertPEM, 0o644); err != nil {
		return err
	}
	p.Issued = append(p.Issued, name+".crt")
	return nil
}
