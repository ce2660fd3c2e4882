package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestNodeIssueRevoke issues a monitor credential, uses it, revokes it and
// pushes the list to the node, which then refuses it at the handshake.
func TestNodeIssueRevoke(t *testing.T) {
	t.Setenv("CAIRN_PKI", "")
	dir := t.TempDir()
	config, addr := nodeFixture(t, dir)
	pkiDir := filepath.Join(dir, "pki")
	grafana := filepath.Join(dir, "grafana.yaml")
	steps := []struct {
		args    []string
		want    string
		wantErr string
	}{
		{args: []string{"issue", "--pki", pkiDir, "--name", "grafana", "--role", "monitor", "-o", grafana, "--server", addr, "--node", "edge-1"}, want: "issued grafana (role monitor, serial "},
		{args: []string{"--config", grafana, "status"}, want: "hostname   edge-1"},
		{args: []string{"--config", grafana, "metrics"}, want: "cairn_node_info"},
		{args: []string{"--config", grafana, "reboot"}, wantErr: "node answered 403 Forbidden: monitor credential 'grafana' may not POST /v1/reboot: needs operator or admin"},
		{args: []string{"--config", grafana, "shutdown"}, wantErr: "needs admin"},
		{args: []string{"issue", "--pki", pkiDir, "--name", "grafana", "--role", "admin", "-o", grafana + "2"}, wantErr: "revoke it first (cairn node revoke --pki " + pkiDir + " grafana)"},
		{args: []string{"revoke", "--pki", pkiDir, "--config", config, "grafana"}, want: "CRL number 1 in force, 1 revoked"},
		{args: []string{"--config", grafana, "status"}, wantErr: "refused this client's certificate (tls: bad certificate): it may be revoked"},
		{args: []string{"--config", config, "status"}, want: "hostname   edge-1"},
		{args: []string{"revoke", "grafana", "--pki", pkiDir}, want: "was revoked already"},
		// A revoked name may be issued again.
		{args: []string{"issue", "--pki", pkiDir, "--name", "grafana", "--role", "operator", "-o", grafana, "--server", addr, "--node", "edge-1"}, want: "issued grafana (role operator"},
		{args: []string{"--config", grafana, "reboot"}, want: ": rebooting"},
	}
	for _, tt := range steps {
		checkNodeCommand(t, tt.args, tt.want, tt.wantErr)
		if t.Failed() {
			t.Fatalf("cairn node %v", tt.args)
		}
	}
	fi, err := os.Stat(grafana)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("issued config: %v, %v; want mode 0600", fi, err)
	}
	if _, err := os.Stat(filepath.Join(pkiDir, "issued", "grafana.crt")); err != nil {
		t.Errorf("the issued certificate is not recorded: %v", err)
	}
}

func TestNodeIssueRevokeErrors(t *testing.T) {
	t.Setenv("CAIRN_PKI", "")
	dir := t.TempDir()
	config, _ := nodeFixture(t, dir)
	pkiDir := filepath.Join(dir, "pki")
	out := filepath.Join(dir, "x.yaml")
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"issue", "--name", "x", "--role", "monitor", "-o", out}, "cairn node issue needs --pki DIR"},
		{[]string{"issue", "--pki", dir, "--name", "x", "--role", "monitor", "-o", out}, "no ca.crt there"},
		{[]string{"issue", "--pki", pkiDir, "--role", "monitor", "-o", out}, "needs --name NAME"},
		{[]string{"issue", "--pki", pkiDir, "--name", "x", "-o", out}, "needs --role ROLE"},
		{[]string{"issue", "--pki", pkiDir, "--name", "x", "--role", "root", "-o", out}, `--role: "root" is not a role (roles: monitor, operator, admin)`},
		{[]string{"issue", "--pki", pkiDir, "--name", "x", "--role", "monitor"}, "needs -o FILE"},
		{[]string{"issue", "--pki", pkiDir, "--name", "../x", "--role", "monitor", "-o", out}, `client name "../x" is not valid`},
		{[]string{"issue", "--pki", pkiDir, "--name", "x", "--role", "monitor", "-o", out, "extra"}, `unexpected argument "extra"`},
		{[]string{"revoke", "--pki", pkiDir}, "needs the credential's name"},
		{[]string{"revoke", "--pki", pkiDir, "nobody"}, `no certificate named "nobody"`},
		{[]string{"revoke", "--pki", pkiDir, "--server", "10.0.0.1", "x"}, "--server and --name need --config"},
		{[]string{"issue", "--pki", pkiDir, "--name", "x", "--role", "monitor", "-o", out, "--node", "Edge_1"}, "--node: node name"},
		{[]string{"revoke", "--pki", pkiDir, "a", "b"}, `unexpected argument "b"`},
		{[]string{"--config", config, "revoke", "x"}, "put the flags of cairn node revoke after it"},
	}
	for _, tt := range tests {
		t.Run(tt.wantErr, func(t *testing.T) {
			checkNodeCommand(t, tt.args, "", tt.wantErr)
		})
	}
	os.Remove(filepath.Join(pkiDir, "ca.key"))
	checkNodeCommand(t, []string{"issue", "--pki", pkiDir, "--name", "x", "--role", "monitor", "-o", out}, "", "ca.key is missing: restore the CA key")
}
