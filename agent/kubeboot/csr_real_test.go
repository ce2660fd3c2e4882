package kubeboot

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestApproveServingRealAPIServer has a node identity ask a real cairn-kube
// control plane (CAIRN_TEST_KUBE_BIN) for kubelet serving certificates, as
// an agent-mode kubelet does: the approver lets the request for the node's
// own address through, the controller manager signs it with the cluster CA,
// and the request for another address stays pending.
func TestApproveServingRealAPIServer(t *testing.T) {
	cp, admin := realControlPlane(t)
	ctx := context.Background()

	// Node edge-2 as its kubelet registers it.
	if err := admin.Do(ctx, http.MethodPost, "/api/v1/nodes", "application/json", []byte(`{"metadata": {"name": "edge-2"}}`), nil); err != nil {
		t.Fatal(err)
	}
	status := `{"status": {"addresses": [{"type": "InternalIP", "address": "192.168.1.20"}, {"type": "Hostname", "address": "edge-2"}]}}`
	if err := admin.Do(ctx, http.MethodPatch, "/api/v1/nodes/edge-2/status", "application/merge-patch+json", []byte(status), nil); err != nil {
		t.Fatal(err)
	}

	pkiDir := filepath.Join(cp.Dir, "pki")
	node := asNode(t, cp, "edge-2") // the node's own identity
	for name, ip := range map[string]string{"serving-own": "192.168.1.20", "serving-foreign": "10.0.0.99"} {
		req := map[string]any{
			"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
			"metadata": map[string]any{"name": name},
			"spec": map[string]any{
				"signerName": ServingSigner, "usages": []string{"digital signature", "server auth"},
				"request": csrPEM(t, "system:node:edge-2", []string{"system:nodes"}, []string{"edge-2"}, ip),
			},
		}
		body, _ := json.Marshal(req)
		if err := node.Do(ctx, http.MethodPost, csrPath, "application/json", body, nil); err != nil {
			t.Fatalf("node creates %s: %v", name, err)
		}
	}

	n := &Node{kube: admin, opts: Options{NodeName: "cairn-native", Log: slog.New(slog.NewTextHandler(io.Discard, nil))}}
	n.approveServing(ctx)

	var got struct {
		Status struct {
			Certificate []byte `json:"certificate"`
			Conditions  []struct{ Type string }
		} `json:"status"`
	}
	deadline := time.Now().Add(time.Minute)
	for len(got.Status.Certificate) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("serving-own not signed after a minute: %+v", got.Status)
		}
		time.Sleep(500 * time.Millisecond)
		if err := admin.Do(ctx, http.MethodGet, csrPath+"/serving-own", "", nil, &got); err != nil {
			t.Fatal(err)
		}
	}
	block, _ := pem.Decode(got.Status.Certificate)
	if block == nil {
		t.Fatalf("certificate is not PEM: %q", got.Status.Certificate)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(pkiDir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	// What the API server checks with --kubelet-certificate-authority when
	// it calls the kubelet at the node's InternalIP.
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "192.168.1.20", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("the signed serving certificate does not verify with the cluster CA for 192.168.1.20: %v", err)
	}

	var foreign struct {
		Status struct {
			Conditions []struct{ Type string } `json:"conditions"`
		} `json:"status"`
	}
	if err := admin.Do(ctx, http.MethodGet, csrPath+"/serving-foreign", "", nil, &foreign); err != nil {
		t.Fatal(err)
	}
	if len(foreign.Status.Conditions) != 0 {
		t.Errorf("serving-foreign (an address edge-2 does not report) has conditions %+v, want it pending", foreign.Status.Conditions)
	}
}
