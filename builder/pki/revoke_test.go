package pki

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/agent/api/role"
)

// TestEnsureClientRole: the builder's client is an admin, and a client.crt
// from before roles (or a revoked one) is reissued.
func TestEnsureClientRole(t *testing.T) {
	dir, _ := fresh(t)
	p, err := Ensure(dir, Options{Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := role.Of(p.Client.Cert); err != nil || r != role.Admin {
		t.Errorf("client role = %q, %v; want admin", r, err)
	}
	// A client certificate without a role, as builds before roles made.
	old, err := Issue(p.CA, Request{CommonName: "cairn-admin", Usage: ClientAuth, NotBefore: t0, NotAfter: t0.Add(ClientValidity)})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.write("client", old); err != nil {
		t.Fatal(err)
	}
	p, err = Ensure(dir, Options{Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Issued, []string{"client.crt"}) || p.Client.Cert.SerialNumber.Cmp(old.Cert.SerialNumber) == 0 {
		t.Errorf("a client.crt without role was not reissued (Issued = %v)", p.Issued)
	}
	if r, _ := role.Of(p.Client.Cert); r != role.Admin {
		t.Errorf("reissued client role = %q, want admin", r)
	}
	// Revoking the builder's own client reissues it too, and bakes the CRL.
	if _, err := Revoke(dir, "cairn-admin", t0); err != nil {
		t.Fatal(err)
	}
	revoked := p.Client.Cert.SerialNumber
	p, err = Ensure(dir, Options{Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	if !p.CRL.Revoked(revoked) || p.CRL.Revoked(p.Client.Cert.SerialNumber) {
		t.Errorf("after revoking client.crt: CRL revokes old %v, new %v; want true, false", p.CRL.Revoked(revoked), p.CRL.Revoked(p.Client.Cert.SerialNumber))
	}
	var baked bool
	for _, f := range p.SlotFiles() {
		baked = baked || f.Path == "etc/cairn/api/crl.pem" && string(f.Data) == string(p.CRL.PEM)
	}
	if !baked {
		t.Error("SlotFiles lack crl.pem")
	}
}

func TestIssueAndRevoke(t *testing.T) {
	dir, _ := fresh(t)
	g, err := IssueClient(dir, "grafana", role.Monitor, t0)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := role.Of(g.Client.Cert); r != role.Monitor || g.Client.Cert.Subject.CommonName != "grafana" {
		t.Errorf("issued %q role %q, want grafana monitor", g.Client.Cert.Subject.CommonName, r)
	}
	if err := checkIssued(dir, "grafana", g.Client, g.CA, x509.ExtKeyUsageClientAuth); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(dir, IssuedDir, "grafana.crt")); err != nil {
		t.Errorf("not recorded: %v", err)
	}
	if _, err := IssueClient(dir, "grafana", role.Admin, t0); err == nil || !strings.Contains(err.Error(), "cairn node revoke") {
		t.Errorf("second grafana: %v, want an error naming cairn node revoke", err)
	}
	ops, err := IssueClient(dir, "ops", role.Operator, t0)
	if err != nil {
		t.Fatal(err)
	}

	r1, err := Revoke(dir, "grafana", t0)
	if err != nil {
		t.Fatal(err)
	}
	if r1.CRL.Number.Int64() != 1 || !r1.CRL.Revoked(g.Client.Cert.SerialNumber) || r1.CRL.Revoked(ops.Client.Cert.SerialNumber) {
		t.Errorf("first CRL: number %v, grafana %v, ops %v", r1.CRL.Number, r1.CRL.Revoked(g.Client.Cert.SerialNumber), r1.CRL.Revoked(ops.Client.Cert.SerialNumber))
	}
	again, err := Revoke(dir, "grafana", t0)
	if err != nil || !again.Already || again.CRL.Number.Int64() != 1 {
		t.Errorf("revoking twice: %+v, %v; want Already with number 1", again, err)
	}
	r2, err := Revoke(dir, "ops", t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if r2.CRL.Number.Int64() != 2 || !r2.CRL.Revoked(g.Client.Cert.SerialNumber) || !r2.CRL.Revoked(ops.Client.Cert.SerialNumber) || r2.CRL.Len() != 2 {
		t.Errorf("second CRL: number %v, %d entries", r2.CRL.Number, r2.CRL.Len())
	}
	// A revoked name may be issued again.
	if _, err := IssueClient(dir, "grafana", role.Monitor, t0); err != nil {
		t.Errorf("reissuing a revoked name: %v", err)
	}

	for _, tt := range []struct{ name, r, want string }{
		{"bad/name", "monitor", "not valid"},
		{"x", "root", "not a role"},
	} {
		if _, err := IssueClient(dir, tt.name, role.Role(tt.r), t0); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("IssueClient(%q, %q) = %v, want %q", tt.name, tt.r, err, tt.want)
		}
	}
	if _, err := Revoke(dir, "nobody", t0); err == nil || !strings.Contains(err.Error(), `no certificate named "nobody"`) {
		t.Errorf("Revoke(nobody) = %v", err)
	}
	os.Remove(filepath.Join(dir, "ca.key"))
	if _, err := Revoke(dir, "ops", t0); err == nil || !strings.Contains(err.Error(), "ca.key is missing") {
		t.Errorf("Revoke without ca.key = %v", err)
	}
}
