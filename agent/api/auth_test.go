package api

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/agent/api/crl"
	"github.com/cairn-edge/cairn/agent/api/role"
	"github.com/cairn-edge/cairn/builder/pki"
)

type fakeKube struct{}

func (fakeKube) Status(context.Context) KubernetesStatus { return KubernetesStatus{} }
func (fakeKube) Kubeconfig(string) ([]byte, error)       { return []byte("kind: Config\n"), nil }
func (fakeKube) JoinKubeconfig(string, string) ([]byte, error) {
	return []byte("kind: Config\n"), nil
}

// credential issues a client certificate called name with role r (none
// when empty) from the test CA.
func credential(t testing.TB, name string, r role.Role) *pki.Pair {
	t.Helper()
	now := time.Now()
	p, err := pki.Issue(sharedPKI(t).CA, pki.Request{CommonName: name, Usage: pki.ClientAuth, Role: r, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// send sends method path with c's connection and returns status and body.
func send(t *testing.T, c *Client, method, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, c.Server()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestRoles calls the routes with each role and with a credential that has
// none.
func TestRoles(t *testing.T) {
	e := start(t, WithKubernetes(fakeKube{}))
	clients := map[string]*Client{
		"admin":    e.client,
		"operator": e.clientWith(t, e.pki.CA, credential(t, "ops-laptop", role.Operator), testNode),
		"monitor":  e.clientWith(t, e.pki.CA, credential(t, "grafana", role.Monitor), testNode),
		"none":     e.clientWith(t, e.pki.CA, credential(t, "old-admin", ""), testNode),
	}
	tests := []struct {
		client, method, path string
		want                 int
		wantBody             string
	}{
		{"monitor", "GET", "/v1/status", 200, ""},
		{"monitor", "GET", "/v1/services", 200, ""},
		{"monitor", "GET", "/metrics", 200, ""},
		{"monitor", "GET", "/v1/services/containerd/logs", 403, "needs operator or admin"},
		{"monitor", "POST", "/v1/reboot", 403, `monitor credential 'grafana' may not POST /v1/reboot: needs operator or admin`},
		{"monitor", "POST", "/v1/services/kubelet/restart", 403, "needs operator or admin"},
		{"monitor", "GET", "/v1/kubeconfig", 403, `monitor credential 'grafana' may not GET /v1/kubeconfig: needs admin`},
		{"monitor", "GET", "/v1/join-kubeconfig?node=edge-2", 403, "needs admin"},
		{"monitor", "POST", "/v1/crl", 403, "needs admin"},
		{"monitor", "GET", "/v1/upgrade", 403, "needs operator or admin"},
		{"monitor", "POST", "/v1/upgrade", 403, "needs operator or admin"},
		{"monitor", "POST", "/v1/shutdown", 403, "needs admin"},
		{"operator", "GET", "/v1/status", 200, ""},
		{"operator", "GET", "/v1/services/containerd/logs", 200, ""},
		{"operator", "POST", "/v1/services/kubelet/restart", 202, ""},
		{"operator", "POST", "/v1/reboot", 202, ""},
		{"operator", "GET", "/metrics", 200, ""},
		// Past the role check: this node has no update section.
		{"operator", "GET", "/v1/upgrade", 404, "no update section"},
		{"operator", "POST", "/v1/upgrade", 404, "no update section"},
		{"operator", "POST", "/v1/crl", 403, "needs admin"},
		{"operator", "POST", "/v1/shutdown", 403, `operator credential 'ops-laptop' may not POST /v1/shutdown: needs admin`},
		{"operator", "GET", "/v1/kubeconfig", 403, "needs admin"},
		{"operator", "GET", "/v1/join-kubeconfig?node=edge-2", 403, "needs admin"},
		{"admin", "GET", "/v1/kubeconfig", 200, "kind: Config"},
		{"admin", "GET", "/v1/join-kubeconfig?node=edge-2", 200, "kind: Config"},
		{"admin", "POST", "/v1/shutdown", 202, ""},
		{"none", "GET", "/v1/status", 403, `certificate 'old-admin' carries no role: the node serves only certificates with a role (admin, operator or monitor); run cairn build again to renew the image's node.yaml, or get one with cairn node issue --role ROLE`},
		{"none", "GET", "/nowhere", 403, "carries no role"},
		{"none", "POST", "/v1/reboot", 403, "carries no role"},
	}
	for _, tt := range tests {
		t.Run(tt.client+" "+tt.method+" "+tt.path, func(t *testing.T) {
			got, body := send(t, clients[tt.client], tt.method, tt.path)
			if got != tt.want || !strings.Contains(body, tt.wantBody) {
				t.Errorf("%s %s as %s = %d %s, want %d with %q", tt.method, tt.path, tt.client, got, body, tt.want, tt.wantBody)
			}
		})
	}
	if e.node.reboots != 1 || e.node.shutdowns != 1 {
		t.Errorf("reboots %d shutdowns %d, want 1 1 (the operator's and the admin's)", e.node.reboots, e.node.shutdowns)
	}

	// The audit log: one line per POST and kubeconfig read, refused ones too, none for reads.
	log := e.log.String()
	for _, want := range []string{
		`msg=audit client=grafana role=monitor call="POST /v1/reboot" status=403`,
		`msg=audit client=grafana role=monitor call="GET /v1/kubeconfig" status=403`,
		`msg=audit client=ops-laptop role=operator call="POST /v1/reboot" status=202`,
		`msg=audit client=ops-laptop role=operator call="POST /v1/shutdown" status=403`,
		`msg=audit client=cairn-admin role=admin call="GET /v1/join-kubeconfig" status=200`,
		`msg=audit client=cairn-admin role=admin call="POST /v1/shutdown" status=202`,
		`msg=audit client=old-admin role=none call="POST /v1/reboot" status=403`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("audit log lacks %s", want)
		}
	}
	if strings.Contains(log, `msg=audit client=grafana role=monitor call="GET /v1/status"`) {
		t.Error("a status read was audited")
	}
}

// TestEveryRouteHasARole: a route left out of the role table is open to
// nobody; catch it before a user does.
func TestEveryRouteHasARole(t *testing.T) {
	for _, rt := range routes {
		if !rt.role.Valid() {
			t.Errorf("%s %s has no role", rt.method, rt.path)
		}
	}
	// An unmapped route (no role) is refused even to an admin.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/v1/new", nil)
	req = req.WithContext(context.WithValue(req.Context(), identityKey{}, identity{name: "cairn-admin", role: role.Admin}))
	if (&Server{}).allow(rec, req, route{method: "GET", path: "/v1/new"}) || rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "open to no role") {
		t.Errorf("a route without role: %d %s, want 403", rec.Code, rec.Body)
	}
	admin := []string{"POST /v1/shutdown", "GET /v1/kubeconfig", "GET /v1/join-kubeconfig", "POST /v1/crl", "POST /v1/clock"}
	for _, rt := range routes {
		want := rt.role == role.Admin
		got := false
		for _, a := range admin {
			got = got || a == rt.method+" "+rt.path
		}
		if got != want {
			t.Errorf("%s %s: role %s, admin only %v", rt.method, rt.path, rt.role, got)
		}
	}
}

// makeCRL signs a CRL numbered number revoking serials with ca.
func makeCRL(t testing.TB, ca *pki.Pair, number int64, serials ...*big.Int) []byte {
	t.Helper()
	tmpl := &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: time.Now(), NextUpdate: time.Now().Add(time.Hour)}
	for _, s := range serials {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: time.Now()})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

// TestRevocation pushes CRLs: a revoked client cannot connect any more,
// and is refused on a connection it opened before; an older or foreign
// CRL is refused; the list outlives a restart.
func TestRevocation(t *testing.T) {
	p := sharedPKI(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state", "crl.pem")
	store, err := crl.Open(p.CA.Cert, filepath.Join(dir, "baked.pem"), state)
	if err != nil {
		t.Fatal(err)
	}
	e := start(t, WithCRL(store))
	ctx := context.Background()
	grafana := credential(t, "grafana", role.Monitor)
	ops := credential(t, "ops", role.Operator)
	open := e.clientWith(t, e.pki.CA, grafana, testNode)
	if _, err := open.Status(ctx); err != nil {
		t.Fatal(err)
	}

	rep, err := e.client.InstallCRL(ctx, makeCRL(t, p.CA, 2, grafana.Cert.SerialNumber))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Number != "2" || rep.Revoked != 1 {
		t.Errorf("reply %+v, want number 2, 1 revoked", rep)
	}
	if _, err := e.clientWith(t, e.pki.CA, grafana, testNode).Status(ctx); err == nil || !strings.Contains(err.Error(), "bad certificate") {
		t.Errorf("revoked client on a new connection: %v, want a refused handshake", err)
	}
	if code, body := send(t, open, "GET", "/v1/status"); code != 403 || !strings.Contains(body, `credential 'grafana' is revoked`) {
		t.Errorf("revoked client on its old connection: %d %s", code, body)
	}
	if _, err := e.clientWith(t, e.pki.CA, ops, testNode).Status(ctx); err != nil {
		t.Errorf("a client not revoked: %v", err)
	}

	other, err := pki.Ensure(filepath.Join(t.TempDir(), "other"), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		crl  []byte
		want int
		msg  string
	}{
		{"older", makeCRL(t, p.CA, 1), 409, "not newer than the CRL the node holds"},
		{"same number, other content", makeCRL(t, p.CA, 2), 409, "not newer"},
		{"another CA's", makeCRL(t, other.CA, 3), 400, "not signed by the node API's CA"},
		{"not a CRL", []byte("hello"), 400, "not a PEM X509 CRL"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.client.InstallCRL(ctx, tt.crl)
			var apiErr *Error
			if !errors.As(err, &apiErr) || apiErr.StatusCode != tt.want || !strings.Contains(apiErr.Message, tt.msg) {
				t.Errorf("InstallCRL = %v, want %d with %q", err, tt.want, tt.msg)
			}
		})
	}
	if _, err := e.client.InstallCRL(ctx, store.Current().PEM); err != nil {
		t.Errorf("the same CRL again: %v", err)
	}
	if !strings.Contains(e.log.String(), `msg=audit client=cairn-admin role=admin call="POST /v1/crl" status=409`) {
		t.Error("a refused CRL upload is not audited")
	}

	// After a restart: the stored list holds; a newer baked one wins.
	again, err := crl.Open(p.CA.Cert, filepath.Join(dir, "baked.pem"), state)
	if err != nil || again.Current().Number.Int64() != 2 || !again.Revoked(grafana.Cert.SerialNumber) {
		t.Fatalf("reopened: %v, %v", again, err)
	}
}
