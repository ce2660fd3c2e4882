// Package kubepki makes and renews the PKI cairn-kube reads from its
// certificate directory: the cluster CA, the API server's serving
// certificate, one client certificate per component, the kubelet's serving
// certificate and the service-account signing key. The node agent calls
// Renew (Ensure, saying what it issued) before it starts cairn-kube and
// every 12 hours: it creates what is missing, re-issues leaf certificates
// that expire soon or no longer fit the options (a new node address), and
// never replaces the CA's key (its certificate is signed again with the
// same key a year before it ends).
//
//	err := kubepki.Ensure("/var/lib/cairn/kube/pki", kubepki.Options{NodeName: "edge-1", NodeIPs: []string{"192.168.1.10"}})
//	err = kubepki.WriteKubeconfig("/var/lib/cairn/kube/admin.kubeconfig", "https://192.168.1.10:6443", dir, "admin")
//
// The layout (all PEM; keys 0600, the rest 0644) is in agent/kube/README.md:
//
//	ca.crt ca.key                          cluster CA (signs kubelet CSRs too)
//	apiserver.crt .key                     API server serving certificate
//	apiserver-kubelet-client.crt .key      the API server's client identity at kubelets
//	controller-manager.crt .key            system:kube-controller-manager
//	scheduler.crt .key                     system:kube-scheduler
//	kubelet.crt .key                       system:node:<node>, group system:nodes
//	kubelet-serving.crt .key               the kubelet's serving certificate
//	kube-proxy.crt .key                    system:kube-proxy
//	admin.crt .key                         cairn-admin, group system:masters
//	sa.key sa.pub                          service-account token signing key pair
//
// Keys are ECDSA P-256, like builder/pki's (which makes the CA).
package kubepki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cairn-edge/cairn/agent/atomicfile"
	"github.com/cairn-edge/cairn/builder/pki"
)

// Validity periods and the renewal window.
const (
	CAValidity          = 10 * 365 * 24 * time.Hour
	DefaultLeafValidity = 365 * 24 * time.Hour
	DefaultRenewBefore  = 30 * 24 * time.Hour
	// backdate covers clocks a little behind the issuer's.
	backdate = time.Hour
)

// Options describe the node the PKI is for.
type Options struct {
	// NodeName is the Kubernetes node name (required).
	NodeName string
	// NodeIPs are the node's addresses, put in the API server's and the
	// kubelet's serving certificates.
	NodeIPs []string
	// ServiceIP is the API server's in-cluster address, the first address
	// of the service network; default 10.43.0.1.
	ServiceIP string
	// ClusterDomain is the cluster's DNS domain; default cluster.local.
	ClusterDomain string
	// ExtraSANs are more DNS names or addresses for the API server's
	// certificate (a load balancer's name, a public address).
	ExtraSANs []string
	// LeafValidity is how long issued leaf certificates last; default 1 year.
	LeafValidity time.Duration
	// RenewBefore re-issues a leaf certificate that expires within it; default 30 days.
	RenewBefore time.Duration
	// Now is the time validity is counted from; time.Now() when zero.
	Now time.Time
}

// usage is what a leaf certificate is for.
type usage int

const (
	serverAuth usage = iota
	clientAuth
)

// leaf describes one leaf certificate of the layout.
type leaf struct {
	name  string // file name without .crt/.key
	cn    string
	orgs  []string
	usage usage
	sans  []string // server certificates only
}

func (o *Options) complete() error {
	if o.NodeName == "" {
		return errors.New("kubepki: NodeName is empty: set it to the Kubernetes node name")
	}
	if o.ServiceIP == "" {
		o.ServiceIP = "10.43.0.1"
	}
	if o.ClusterDomain == "" {
		o.ClusterDomain = "cluster.local"
	}
	if o.LeafValidity == 0 {
		o.LeafValidity = DefaultLeafValidity
	}
	if o.RenewBefore == 0 {
		o.RenewBefore = DefaultRenewBefore
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	for _, ip := range append(slices.Clone(o.NodeIPs), o.ServiceIP) {
		if net.ParseIP(ip) == nil {
			return fmt.Errorf("kubepki: %q is not an IP address", ip)
		}
	}
	return nil
}

// leaves is the layout's leaf certificates for o.
func leaves(o Options) []leaf {
	api := []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc",
		"kubernetes.default.svc." + o.ClusterDomain, "localhost", "127.0.0.1", o.ServiceIP, o.NodeName}
	api = append(api, o.NodeIPs...)
	api = append(api, o.ExtraSANs...)
	kubelet := append([]string{o.NodeName, "localhost", "127.0.0.1"}, o.NodeIPs...)
	return []leaf{
		{name: "apiserver", cn: "kube-apiserver", usage: serverAuth, sans: api},
		{name: "apiserver-kubelet-client", cn: "kube-apiserver-kubelet-client", orgs: []string{"system:masters"}, usage: clientAuth},
		{name: "controller-manager", cn: "system:kube-controller-manager", usage: clientAuth},
		{name: "scheduler", cn: "system:kube-scheduler", usage: clientAuth},
		{name: "kubelet", cn: "system:node:" + o.NodeName, orgs: []string{"system:nodes"}, usage: clientAuth},
		{name: "kubelet-serving", cn: "system:node:" + o.NodeName, orgs: []string{"system:nodes"}, usage: serverAuth, sans: kubelet},
		{name: "kube-proxy", cn: "system:kube-proxy", usage: clientAuth},
		{name: "admin", cn: "cairn-admin", orgs: []string{"system:masters"}, usage: clientAuth},
	}
}

// Ensure brings the PKI in dir up to date for opts (see the package doc).
// A PKI it cannot use (a certificate without its key, leaves without a CA)
// is an error naming the file and the fix, never silently replaced.
func Ensure(dir string, opts Options) error {
	_, err := Renew(dir, opts)
	return err
}

// Renew is Ensure that also says what it issued: the names of the
// certificates it wrote ("ca", "apiserver", "kubelet", …), so the caller
// can restart what reads them. Nothing issued: nil.
func Renew(dir string, opts Options) (issued []string, err error) {
	if err := opts.complete(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("kubepki: %w", err)
	}
	ca, caIssued, err := ensureCA(dir, opts)
	if err != nil {
		return nil, err
	}
	if caIssued {
		issued = append(issued, "ca")
	}
	for _, l := range leaves(opts) {
		ok, err := ensureLeaf(dir, ca, l, opts)
		if err != nil {
			return issued, err
		}
		if ok {
			issued = append(issued, l.name)
		}
	}
	return issued, ensureSAKey(dir)
}

// CARenewBefore is how long before its end the CA certificate is renewed:
// signed again with the same key, so every certificate it issued stays
// valid and clients that still hold the old CA certificate (kubeconfigs
// handed out earlier) keep working until it expires; they have this long
// to fetch a new kubeconfig.
const CARenewBefore = 365 * 24 * time.Hour

// ensureCA loads the CA, makes one when there is none and renews it when
// it ends within CARenewBefore (or ended: a node switched off for years);
// it reports whether it wrote ca.crt.
func ensureCA(dir string, o Options) (*pki.Pair, bool, error) {
	ca, err := pki.LoadPair(dir, "ca", false)
	if err != nil {
		return nil, false, err
	}
	if ca == nil {
		if exists(filepath.Join(dir, "apiserver.crt")) {
			return nil, false, fmt.Errorf("kubepki: %s has certificates but no ca.crt/ca.key: restore them, or empty the directory to start a new cluster PKI", dir)
		}
		if ca, err = pki.NewCA("cairn kubernetes CA", o.Now, CAValidity); err != nil {
			return nil, false, err
		}
		if err := writePair(dir, "ca", ca.CertPEM, ca.KeyPEM); err != nil {
			return nil, false, err
		}
		return ca, true, nil
	}
	if !ca.Cert.IsCA {
		return nil, false, fmt.Errorf("kubepki: %s is not a CA certificate: restore the cluster CA or empty %s", filepath.Join(dir, "ca.crt"), dir)
	}
	// Renewed too when it starts after now: made while the clock was
	// ahead (a wrong RTC, later corrected), nothing would accept it.
	if o.Now.Add(CARenewBefore).Before(ca.Cert.NotAfter) && !o.Now.Before(ca.Cert.NotBefore) {
		return ca, false, nil
	}
	renewed, err := renewCA(ca, o.Now)
	if err != nil {
		return nil, false, fmt.Errorf("kubepki: renewing %s (it ends on %s): %w", filepath.Join(dir, "ca.crt"), ca.Cert.NotAfter.Format(time.DateOnly), err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "ca.crt"), renewed.CertPEM, 0o644); err != nil {
		return nil, false, err
	}
	return renewed, true, nil
}

// renewCA signs ca's certificate again, with its own key, subject and key
// identifier, valid from now for CAValidity.
func renewCA(ca *pki.Pair, now time.Time) (*pki.Pair, error) {
	if ca.Key == nil {
		return nil, errors.New("the CA's private key ca.key is missing (restore it)")
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               ca.Cert.Subject,
		NotBefore:             now.Add(-backdate).UTC().Truncate(time.Second),
		NotAfter:              now.Add(CAValidity).UTC().Truncate(time.Second),
		KeyUsage:              ca.Cert.KeyUsage,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        ca.Cert.MaxPathLenZero,
		SubjectKeyId:          ca.Cert.SubjectKeyId,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, ca.Key.Public(), ca.Key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &pki.Pair{Cert: cert, Key: ca.Key, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), KeyPEM: ca.KeyPEM}, nil
}

// ensureLeaf issues l unless a usable certificate for it exists: signed by
// ca, with l's subject, usage and names, not expiring within RenewBefore.
// It reports whether it issued one.
func ensureLeaf(dir string, ca *pki.Pair, l leaf, o Options) (bool, error) {
	// A leaf that cannot be read (half written, a lone key) is simply
	// issued again: only the CA and sa.key are precious.
	cur, err := pki.LoadPair(dir, l.name, false)
	if err == nil && cur != nil && fits(cur.Cert, ca, l, o) {
		return false, nil
	}
	notAfter := o.Now.Add(o.LeafValidity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	certPEM, keyPEM, err := issue(ca, l, o.Now.Add(-backdate), notAfter)
	if err != nil {
		return false, fmt.Errorf("kubepki: issuing %s.crt: %w", l.name, err)
	}
	return true, writePair(dir, l.name, certPEM, keyPEM)
}

func fits(c *x509.Certificate, ca *pki.Pair, l leaf, o Options) bool {
	if c.CheckSignatureFrom(ca.Cert) != nil {
		return false // issued by an earlier CA
	}
	if o.Now.Add(o.RenewBefore).After(c.NotAfter) || o.Now.Before(c.NotBefore) {
		return false // ends soon, or starts later: issued while the clock was ahead
	}
	if c.Subject.CommonName != l.cn || !slices.Equal(c.Subject.Organization, l.orgs) {
		return false
	}
	want := x509.ExtKeyUsageClientAuth
	if l.usage == serverAuth {
		want = x509.ExtKeyUsageServerAuth
	}
	if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{want}) {
		return false
	}
	return slices.Equal(pki.CertNames(c), names(l.sans))
}

func names(sans []string) []string {
	var out []string
	for _, n := range sans {
		if ip := net.ParseIP(n); ip != nil {
			n = ip.String()
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// issue signs a new leaf certificate and key for l with ca.
func issue(ca *pki.Pair, l leaf, notBefore, notAfter time.Time) (certPEM, keyPEM []byte, err error) {
	if ca.Key == nil {
		return nil, nil, errors.New("the CA's private key ca.key is missing (restore it)")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	ski := sha256.Sum256(pub)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: l.cn, Organization: l.orgs},
		NotBefore:             notBefore.UTC().Truncate(time.Second),
		NotAfter:              notAfter.UTC().Truncate(time.Second),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		SubjectKeyId:          ski[:20],
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if l.usage == serverAuth {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		for _, n := range names(l.sans) {
			if ip := net.ParseIP(n); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, n)
			}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// ensureSAKey makes the service-account signing key pair: sa.key (PKCS#8)
// and sa.pub (PKIX), re-deriving sa.pub from sa.key when only it is lost.
// It is never rotated: every token issued so far would stop working.
func ensureSAKey(dir string) error {
	keyPath, pubPath := filepath.Join(dir, "sa.key"), filepath.Join(dir, "sa.pub")
	var key crypto.Signer
	data, err := os.ReadFile(keyPath)
	switch {
	case err == nil:
		if key, err = pki.ParseKey(data); err != nil {
			return fmt.Errorf("kubepki: %s: %w (restore it; a new key invalidates every service-account token)", keyPath, err)
		}
	case errors.Is(err, fs.ErrNotExist):
		if exists(pubPath) {
			return fmt.Errorf("kubepki: %s exists without %s: restore sa.key, or remove sa.pub to make a new pair (invalidating existing service-account tokens)", pubPath, keyPath)
		}
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return err
		}
		key = k
	default:
		return err
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return err
	}
	pub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	if cur, err := os.ReadFile(pubPath); err == nil && bytes.Equal(cur, pub) {
		return nil
	}
	return atomicfile.WriteFile(pubPath, pub, 0o644)
}

// WriteKubeconfig writes a self-contained kubeconfig at path (0600) for
// the API server at server, with the CA and the identity's certificate and
// key from dir embedded: identity "admin" gives cluster-admin rights.
func WriteKubeconfig(path, server, dir, identity string) error {
	var data [3][]byte
	for i, name := range []string{"ca.crt", identity + ".crt", identity + ".key"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("kubepki: kubeconfig for %s: %w (run Ensure first)", identity, err)
		}
		data[i] = b
	}
	return atomicfile.WriteFile(path, kubeconfigYAML(server, "", identity, data[0], data[1], data[2]), 0o600)
}

// kubeconfigYAML is a self-contained kubeconfig for the API server at
// server: the CA and the user's certificate and key embedded. A
// tlsServerName is the name to verify the server's certificate for
// instead of server's host.
func kubeconfigYAML(server, tlsServerName, user string, caPEM, certPEM, keyPEM []byte) []byte {
	b64 := base64.StdEncoding.EncodeToString
	var sb strings.Builder
	serverName := ""
	if tlsServerName != "" {
		serverName = fmt.Sprintf("\n    tls-server-name: %q", tlsServerName)
	}
	fmt.Fprintf(&sb, `apiVersion: v1
kind: Config
clusters:
- name: cairn
  cluster:
    server: %q%s
    certificate-authority-data: %s
users:
- name: %s
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: cairn
  context:
    cluster: cairn
    user: %s
current-context: cairn
`, server, serverName, b64(caPEM), user, b64(certPEM), b64(keyPEM), user)
	return []byte(sb.String())
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// writePair stores a pair, each file atomically, the key first: a crash
// between the two leaves a new key beside the old certificate, a mismatch
// the next Ensure repairs by issuing the leaf again.
func writePair(dir, name string, certPEM, keyPEM []byte) error {
	if err := atomicfile.WriteFile(filepath.Join(dir, name+".key"), keyPEM, 0o600); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, name+".crt"), certPEM, 0o644)
}

// HTTPClient is a client of the cluster's API server that trusts dir's CA
// and authenticates as identity ("admin": a cluster administrator).
func HTTPClient(dir, identity string) (*http.Client, error) {
	ca, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("kubepki: %s holds no PEM certificate", filepath.Join(dir, "ca.crt"))
	}
	certFile, keyFile := filepath.Join(dir, identity+".crt"), filepath.Join(dir, identity+".key")
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		return nil, err
	}
	// Read at each handshake: Renew may have replaced them since.
	clientCert := func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		return &c, err
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, GetClientCertificate: clientCert, MinVersion: tls.VersionTLS12},
	}}, nil
}
