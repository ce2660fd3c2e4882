package kubepki

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/builder/pki"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func opts() Options {
	return Options{NodeName: "edge-1", NodeIPs: []string{"192.168.1.10"}, Now: now}
}

func readCert(t *testing.T, dir, name string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, name+".crt"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatalf("%s.crt: no PEM", name)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// snapshot reads every file of dir.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = data
	}
	return files
}

func changed(before, after map[string][]byte) []string {
	var out []string
	for name, data := range after {
		if !bytes.Equal(before[name], data) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func TestEnsureLayout(t *testing.T) {
	dir := t.TempDir()
	if err := Ensure(dir, opts()); err != nil {
		t.Fatal(err)
	}
	ca := readCert(t, dir, "ca")
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	tests := []struct {
		name   string
		cn     string
		orgs   []string
		usage  x509.ExtKeyUsage
		sans   []string // some of the names the certificate must carry
		verify string   // a name to verify a serving certificate for
	}{
		{"apiserver", "kube-apiserver", nil, x509.ExtKeyUsageServerAuth, []string{"kubernetes.default.svc.cluster.local", "10.43.0.1", "127.0.0.1", "192.168.1.10", "edge-1"}, "kubernetes.default.svc"},
		{"apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"}, x509.ExtKeyUsageClientAuth, nil, ""},
		{"controller-manager", "system:kube-controller-manager", nil, x509.ExtKeyUsageClientAuth, nil, ""},
		{"scheduler", "system:kube-scheduler", nil, x509.ExtKeyUsageClientAuth, nil, ""},
		{"kubelet", "system:node:edge-1", []string{"system:nodes"}, x509.ExtKeyUsageClientAuth, nil, ""},
		{"kubelet-serving", "system:node:edge-1", []string{"system:nodes"}, x509.ExtKeyUsageServerAuth, []string{"edge-1", "192.168.1.10"}, "192.168.1.10"},
		{"kube-proxy", "system:kube-proxy", nil, x509.ExtKeyUsageClientAuth, nil, ""},
		{"admin", "cairn-admin", []string{"system:masters"}, x509.ExtKeyUsageClientAuth, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := readCert(t, dir, tt.name)
			if got, want := c.Subject.CommonName, tt.cn; got != want {
				t.Errorf("CN = %q, want %q", got, want)
			}
			if got, want := c.Subject.Organization, tt.orgs; !slices.Equal(got, want) {
				t.Errorf("O = %q, want %q", got, want)
			}
			if _, err := c.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{tt.usage}, DNSName: tt.verify}); err != nil {
				t.Errorf("does not verify: %v", err)
			}
			got := pki.CertNames(c)
			for _, n := range tt.sans {
				if !slices.Contains(got, n) {
					t.Errorf("names %v lack %s", got, n)
				}
			}
			info, err := os.Stat(filepath.Join(dir, tt.name+".key"))
			if err != nil {
				t.Fatal(err)
			}
			if info.Mode().Perm() != 0o600 {
				t.Errorf("%s.key mode %v, want 0600", tt.name, info.Mode().Perm())
			}
		})
	}
	for _, f := range []string{"sa.key", "sa.pub"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestEnsureRenewal(t *testing.T) {
	tests := []struct {
		name   string
		change func(o *Options)
		want   []string // files re-written by the second Ensure
	}{
		{"nothing to do", func(o *Options) {}, nil},
		{"a day later", func(o *Options) { o.Now = o.Now.Add(24 * time.Hour) }, nil},
		{"leaves expire within 30 days", func(o *Options) { o.Now = o.Now.Add(340 * 24 * time.Hour) }, []string{
			"admin.crt", "admin.key", "apiserver-kubelet-client.crt", "apiserver-kubelet-client.key",
			"apiserver.crt", "apiserver.key", "controller-manager.crt", "controller-manager.key",
			"kube-proxy.crt", "kube-proxy.key", "kubelet-serving.crt", "kubelet-serving.key",
			"kubelet.crt", "kubelet.key", "scheduler.crt", "scheduler.key"}},
		{"new node address", func(o *Options) { o.NodeIPs = []string{"192.168.1.11"} }, []string{
			"apiserver.crt", "apiserver.key", "kubelet-serving.crt", "kubelet-serving.key"}},
		{"extra API name", func(o *Options) { o.ExtraSANs = []string{"edge.example.com"} }, []string{"apiserver.crt", "apiserver.key"}},
		{"renamed node", func(o *Options) { o.NodeName = "edge-2" }, []string{
			"apiserver.crt", "apiserver.key", "kubelet-serving.crt", "kubelet-serving.key", "kubelet.crt", "kubelet.key"}},
		{"clock two years ahead: leaves expired", func(o *Options) { o.Now = o.Now.Add(2 * 365 * 24 * time.Hour) }, allLeaves},
		{"CA ends within a year", func(o *Options) { o.Now = o.Now.Add(CAValidity - 300*24*time.Hour) }, append([]string{"ca.crt"}, allLeaves...)},
		{"CA ended", func(o *Options) { o.Now = o.Now.Add(CAValidity + 24*time.Hour) }, append([]string{"ca.crt"}, allLeaves...)},
		{"clock set back a day: everything starts later", func(o *Options) { o.Now = o.Now.Add(-24 * time.Hour) }, append([]string{"ca.crt"}, allLeaves...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := Ensure(dir, opts()); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, dir)
			o := opts()
			tt.change(&o)
			issued, err := Renew(dir, o)
			if err != nil {
				t.Fatal(err)
			}
			if got := changed(before, snapshot(t, dir)); !slices.Equal(got, slices.Sorted(slices.Values(tt.want))) {
				t.Errorf("re-written %v, want %v", got, tt.want)
			}
			var want []string // the certificates among the files
			for _, f := range tt.want {
				if name, ok := strings.CutSuffix(f, ".crt"); ok {
					want = append(want, name)
				}
			}
			slices.Sort(issued)
			slices.Sort(want)
			if !slices.Equal(issued, want) {
				t.Errorf("Renew says it issued %v, want %v", issued, want)
			}
		})
	}
}

// allLeaves are the files of every leaf certificate.
var allLeaves = []string{
	"admin.crt", "admin.key", "apiserver-kubelet-client.crt", "apiserver-kubelet-client.key",
	"apiserver.crt", "apiserver.key", "controller-manager.crt", "controller-manager.key",
	"kube-proxy.crt", "kube-proxy.key", "kubelet-serving.crt", "kubelet-serving.key",
	"kubelet.crt", "kubelet.key", "scheduler.crt", "scheduler.key"}

// TestCARenewalKeepsLeaves: the CA renewed with its own key still vouches
// for the leaves issued under the old certificate, and the old certificate
// for the leaves issued after, so nothing has to change at once.
func TestCARenewalKeepsLeaves(t *testing.T) {
	dir := t.TempDir()
	o := opts()
	if err := Ensure(dir, o); err != nil {
		t.Fatal(err)
	}
	oldCA := readCert(t, dir, "ca")
	o.Now = now.Add(CAValidity - 400*24*time.Hour) // leaves issued then end 35 days before the CA
	if err := Ensure(dir, o); err != nil {
		t.Fatal(err)
	}
	oldLeaf := readCert(t, dir, "apiserver")
	o.Now = o.Now.Add(100 * 24 * time.Hour) // the CA now ends within a year
	issued, err := Renew(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(issued, []string{"ca"}) {
		t.Fatalf("issued %v, want only the CA (the leaves are still good)", issued)
	}
	newCA := readCert(t, dir, "ca")
	if !newCA.NotAfter.After(oldCA.NotAfter) || !bytes.Equal(newCA.SubjectKeyId, oldCA.SubjectKeyId) || newCA.Subject.String() != oldCA.Subject.String() {
		t.Fatalf("renewed CA: ends %s (was %s), key id %x (was %x), subject %s (was %s)", newCA.NotAfter, oldCA.NotAfter, newCA.SubjectKeyId, oldCA.SubjectKeyId, newCA.Subject, oldCA.Subject)
	}
	verify := func(leaf, ca *x509.Certificate) error {
		roots := x509.NewCertPool()
		roots.AddCert(ca)
		_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: o.Now, DNSName: "kubernetes"})
		return err
	}
	if err := verify(oldLeaf, newCA); err != nil {
		t.Errorf("a leaf of the old CA certificate, against the renewed one: %v", err)
	}
	o.Now = o.Now.Add(280 * 24 * time.Hour) // the old leaf ends: issued again
	if err := Ensure(dir, o); err != nil {
		t.Fatal(err)
	}
	if err := verify(readCert(t, dir, "apiserver"), oldCA); err != nil {
		t.Errorf("a leaf issued after the renewal, against the old CA certificate: %v", err)
	}
}

func TestEnsureRepairs(t *testing.T) {
	tests := []struct {
		name    string
		break_  func(dir string) error
		wantErr string // "" when Ensure repairs it
	}{
		{"lost leaf", func(dir string) error { return os.Remove(filepath.Join(dir, "scheduler.crt")) }, ""},
		{"torn leaf", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "kubelet.key"), []byte("junk"), 0o600)
		}, ""},
		{"lost sa.pub", func(dir string) error { return os.Remove(filepath.Join(dir, "sa.pub")) }, ""},
		{"lost CA", func(dir string) error {
			os.Remove(filepath.Join(dir, "ca.key"))
			return os.Remove(filepath.Join(dir, "ca.crt"))
		}, "no ca.crt/ca.key"},
		{"lost CA key", func(dir string) error { return os.Remove(filepath.Join(dir, "ca.key")) }, "ca.crt exists without"},
		{"lost sa.key", func(dir string) error { return os.Remove(filepath.Join(dir, "sa.key")) }, "restore sa.key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := Ensure(dir, opts()); err != nil {
				t.Fatal(err)
			}
			ca := snapshot(t, dir)["ca.crt"]
			if err := tt.break_(dir); err != nil {
				t.Fatal(err)
			}
			err := Ensure(dir, opts())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Ensure = %v, want an error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(snapshot(t, dir)["ca.crt"], ca) {
				t.Error("the CA changed")
			}
			if err := Ensure(dir, opts()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestOptionsErrors(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"no node name", Options{}, "NodeName is empty"},
		{"bad node IP", Options{NodeName: "n", NodeIPs: []string{"10.0.0"}}, `"10.0.0" is not an IP address`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Ensure(t.TempDir(), tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Ensure = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestWriteKubeconfig(t *testing.T) {
	dir := t.TempDir()
	if err := Ensure(dir, opts()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "admin.kubeconfig")
	if err := WriteKubeconfig(path, "https://192.168.1.10:6443", dir, "admin"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := os.ReadFile(filepath.Join(dir, "admin.key"))
	for _, want := range []string{
		`server: "https://192.168.1.10:6443"`,
		"client-key-data: " + base64.StdEncoding.EncodeToString(key),
		"current-context: cairn",
	} {
		if !strings.Contains(string(data), want) {
			t.Errorf("kubeconfig lacks %q:\n%s", want, data)
		}
	}
	if err := WriteKubeconfig(path, "https://x", dir, "nobody"); err == nil {
		t.Error("WriteKubeconfig for a missing identity succeeded")
	}
}
