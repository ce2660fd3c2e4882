package kubeboot

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// csrPEM is a certificate request for subject (CN, O) naming dns and ips.
func csrPEM(t *testing.T, cn string, orgs, dns []string, ips ...string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn, Organization: orgs}, DNSNames: dns}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// kubeletCSR is the request an agent-mode kubelet named node makes.
func kubeletCSR(t *testing.T, name, node string, dns []string, ips ...string) *csr {
	c := &csr{}
	c.Metadata.Name = name
	c.Spec.SignerName = ServingSigner
	c.Spec.Username = "system:node:" + node
	c.Spec.Groups = []string{"system:nodes", "system:authenticated"}
	c.Spec.Usages = []string{"digital signature", "server auth"}
	c.Spec.Request = csrPEM(t, "system:node:"+node, []string{"system:nodes"}, dns, ips...)
	return c
}

func TestServingVerdict(t *testing.T) {
	node := &nodeAddresses{names: []string{"edge-2"}, ips: []string{"192.168.1.20", "fd00::20"}}
	for _, tt := range []struct {
		name string
		c    func() *csr
		node *nodeAddresses
		want string // substring of the reason; "" = approve
	}{
		{"kubelet", func() *csr { return kubeletCSR(t, "a", "edge-2", []string{"edge-2"}, "192.168.1.20") }, node, ""},
		{"IPv6 and no name", func() *csr { return kubeletCSR(t, "a", "edge-2", nil, "fd00::20") }, node, ""},
		{"key encipherment", func() *csr {
			c := kubeletCSR(t, "a", "edge-2", []string{"edge-2"})
			c.Spec.Usages = append(c.Spec.Usages, "key encipherment")
			return c
		}, node, ""},
		{"foreign address", func() *csr { return kubeletCSR(t, "a", "edge-2", []string{"edge-2"}, "10.0.0.1") }, node, "address 10.0.0.1 is not among node edge-2's addresses"},
		{"foreign name", func() *csr { return kubeletCSR(t, "a", "edge-2", []string{"kubernetes.default"}) }, node, "name kubernetes.default is not among"},
		{"no node", func() *csr { return kubeletCSR(t, "a", "edge-9", []string{"edge-9"}) }, nil, "no Node edge-9"},
		{"not a node", func() *csr {
			c := kubeletCSR(t, "a", "edge-2", []string{"edge-2"})
			c.Spec.Username = "alice"
			return c
		}, node, `requested by "alice", not a node`},
		{"not in system:nodes", func() *csr {
			c := kubeletCSR(t, "a", "edge-2", []string{"edge-2"})
			c.Spec.Groups = []string{"system:authenticated"}
			return c
		}, node, "is not in group system:nodes"},
		{"another node's subject", func() *csr {
			c := kubeletCSR(t, "a", "edge-2", []string{"edge-2"})
			c.Spec.Request = csrPEM(t, "system:node:edge-3", []string{"system:nodes"}, []string{"edge-2"})
			return c
		}, node, `subject "system:node:edge-3" is not the requester system:node:edge-2`},
		{"organization", func() *csr {
			c := kubeletCSR(t, "a", "edge-2", []string{"edge-2"})
			c.Spec.Request = csrPEM(t, "system:node:edge-2", []string{"system:masters"}, []string{"edge-2"})
			return c
		}, node, "organization"},
		{"client usage", func() *csr {
			c := kubeletCSR(t, "a", "edge-2", []string{"edge-2"})
			c.Spec.Usages = append(c.Spec.Usages, "client auth")
			return c
		}, node, `usage "client auth"`},
		{"no server auth", func() *csr {
			c := kubeletCSR(t, "a", "edge-2", []string{"edge-2"})
			c.Spec.Usages = []string{"digital signature"}
			return c
		}, node, `does not ask for usage "server auth"`},
		{"no names", func() *csr { return kubeletCSR(t, "a", "edge-2", nil) }, node, "names no address"},
		{"garbage", func() *csr {
			c := kubeletCSR(t, "a", "edge-2", []string{"edge-2"})
			c.Spec.Request = []byte("not pem")
			return c
		}, node, "not a PEM CERTIFICATE REQUEST"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := servingVerdict(tt.c(), tt.node)
			if tt.want == "" && got != "" || tt.want != "" && !strings.Contains(got, tt.want) {
				t.Errorf("servingVerdict = %q, want %q", got, tt.want)
			}
		})
	}
}

// csrAPI serves a CSR list and Node edge-2, and records approvals.
type csrAPI struct {
	t        *testing.T
	items    []any
	mu       sync.Mutex
	approved map[string]string // CSR name → condition reason
}

func (f *csrAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && r.URL.Path == csrPath:
		if got := r.URL.Query().Get("fieldSelector"); got != "spec.signerName="+ServingSigner {
			f.t.Errorf("list fieldSelector = %q", got)
		}
		json.NewEncoder(w).Encode(map[string]any{"items": f.items})
	case r.Method == http.MethodGet && r.URL.Path == "/api/v1/nodes/edge-2":
		io.WriteString(w, `{"status": {"addresses": [{"type": "InternalIP", "address": "192.168.1.20"}, {"type": "Hostname", "address": "edge-2"}]}}`)
	case r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, csrPath+"/") && strings.HasSuffix(r.URL.Path, "/approval"):
		var obj struct {
			Metadata struct{ Name string } `json:"metadata"`
			Status   struct {
				Conditions []struct{ Type, Status, Reason string } `json:"conditions"`
			} `json:"status"`
		}
		json.NewDecoder(r.Body).Decode(&obj)
		name := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, csrPath+"/"), "/approval")
		if obj.Metadata.Name != name || len(obj.Status.Conditions) != 1 || obj.Status.Conditions[0].Type != "Approved" || obj.Status.Conditions[0].Status != "True" {
			f.t.Errorf("approval of %s: body %+v", name, obj)
		}
		f.mu.Lock()
		f.approved[name] = obj.Status.Conditions[0].Reason
		f.mu.Unlock()
		io.WriteString(w, "{}")
	default:
		http.NotFound(w, r)
	}
}

func TestApproveServing(t *testing.T) {
	good := kubeletCSR(t, "csr-good", "edge-2", []string{"edge-2"}, "192.168.1.20")
	foreign := kubeletCSR(t, "csr-foreign", "edge-2", []string{"edge-2"}, "10.43.0.1")
	done := kubeletCSR(t, "csr-done", "edge-2", []string{"edge-2"}, "192.168.1.20")
	done.Status.Conditions = append(done.Status.Conditions, struct {
		Type string `json:"type"`
	}{"Approved"})
	other := kubeletCSR(t, "csr-client", "edge-2", []string{"edge-2"}, "192.168.1.20")
	other.Spec.SignerName = "kubernetes.io/kube-apiserver-client-kubelet"
	api := &csrAPI{t: t, items: []any{good, foreign, done, other}, approved: map[string]string{}}
	n, _ := testNode(t, api)
	n.approveServing(context.Background())
	if len(api.approved) != 1 || api.approved["csr-good"] != "CairnNodeAddresses" {
		t.Errorf("approved %v, want only csr-good", api.approved)
	}
	if !n.csrSkipped["csr-foreign"] {
		t.Errorf("csr-foreign was not noted as left pending: %v", n.csrSkipped)
	}
}
