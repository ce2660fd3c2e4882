package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFirewallValidate(t *testing.T) {
	for _, tt := range []struct {
		name    string
		f       Firewall
		wantErr string // substring; "" = valid
	}{
		{name: "empty", f: Firewall{}},
		{name: "off", f: Firewall{Enabled: boolp(false)}},
		{name: "entries", f: Firewall{Enabled: boolp(true), Allow: []FirewallAllow{
			{Port: 8080, Proto: "tcp", From: "10.0.0.0/8"}, {Port: 53, Proto: "udp"}, {Port: 22, From: "192.168.1.5"}, {Port: 9100, From: "fd00::/8"},
			{Port: 8080, Proto: "udp"}, // same port, other protocol
			{Port: 8080, From: "10.1.0.0/16"},
		}}},
		{name: "no port", f: Firewall{Allow: []FirewallAllow{{Proto: "tcp"}}}, wantErr: "allow[0]: port is required"},
		{name: "port too big", f: Firewall{Allow: []FirewallAllow{{Port: 70000}}}, wantErr: "allow[0] (port 70000/tcp): port 70000 is not a port (use 1–65535)"},
		{name: "negative port", f: Firewall{Allow: []FirewallAllow{{Port: -1}}}, wantErr: "port -1 is not a port"},
		{name: "proto", f: Firewall{Allow: []FirewallAllow{{Port: 1, Proto: "icmp"}}}, wantErr: `allow[0] (port 1/icmp): proto "icmp" is not tcp or udp`},
		{name: "proto case", f: Firewall{Allow: []FirewallAllow{{Port: 1, Proto: "TCP"}}}, wantErr: `proto "TCP" is not tcp or udp`},
		{name: "from", f: Firewall{Allow: []FirewallAllow{{Port: 1}, {Port: 8080, From: "10.0.0.0/33"}}}, wantErr: `allow[1] (port 8080/tcp): from "10.0.0.0/33" is not a network in CIDR form or an address (write e.g. from: 10.0.0.0/8`},
		{name: "from name", f: Firewall{Allow: []FirewallAllow{{Port: 8080, From: "lan"}}}, wantErr: `from "lan" is not a network`},
		{name: "duplicate", f: Firewall{Allow: []FirewallAllow{{Port: 8080}, {Port: 8080, Proto: "tcp"}}}, wantErr: "allow[1] (port 8080/tcp): same as allow[0] (remove one)"},
		{name: "duplicate network", f: Firewall{Allow: []FirewallAllow{{Port: 8080, From: "10.0.0.0/8"}, {Port: 8080, From: "10.1.2.3/8"}}}, wantErr: "same as allow[0]"},
		{name: "entries while off", f: Firewall{Enabled: boolp(false), Allow: []FirewallAllow{{Port: 8080}}}, wantErr: "allow has 1 entries but enabled is false"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.f.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Validate() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestFirewallOn(t *testing.T) {
	for _, tt := range []struct {
		name string
		c    Config
		want bool
	}{
		{"plain node", Config{}, false},
		{"kubernetes node", Config{Kubernetes: &Kubernetes{}}, true},
		{"plain node, on", Config{Firewall: Firewall{Enabled: boolp(true)}}, true},
		{"kubernetes node, off", Config{Kubernetes: &Kubernetes{}, Firewall: Firewall{Enabled: boolp(false)}}, false},
	} {
		if got := tt.c.FirewallOn(); got != tt.want {
			t.Errorf("%s: FirewallOn() = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestFirewallSource(t *testing.T) {
	for _, tt := range []struct{ from, want string }{
		{"", ""}, {"10.0.0.0/8", "10.0.0.0/8"}, {"10.1.2.3/16", "10.1.0.0/16"}, {"192.168.1.5", "192.168.1.5/32"}, {"fd00::1", "fd00::1/128"},
	} {
		p, ok := FirewallAllow{Port: 1, From: tt.from}.Source()
		got := ""
		if ok {
			got = p.String()
		}
		if got != tt.want {
			t.Errorf("Source(%q) = %q, want %q", tt.from, got, tt.want)
		}
	}
}

func TestFirewallRoundTrip(t *testing.T) {
	in := "firewall:\n  enabled: true\n  allow:\n    - {port: 8080, proto: tcp, from: 10.0.0.0/8}\n"
	p := filepath.Join(t.TempDir(), "agent.yaml")
	os.WriteFile(p, []byte(in), 0o644)
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	data, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p, data, 0o644)
	got, err := Load(p)
	if err != nil {
		t.Fatalf("Load: %v\n%s", err, data)
	}
	if !got.FirewallOn() || len(got.Firewall.Allow) != 1 || got.Firewall.Allow[0] != (FirewallAllow{Port: 8080, Proto: "tcp", From: "10.0.0.0/8"}) {
		t.Errorf("round trip = %+v\n%s", got.Firewall, data)
	}
	// A configuration without the section writes none: the default stays
	// the agent's to decide.
	if data, _ := (Config{}).Marshal(); strings.Contains(string(data), "firewall") {
		t.Errorf("empty config marshals a firewall key:\n%s", data)
	}
	os.WriteFile(p, []byte("firewall:\n  allow:\n    - {port: 0}\n"), 0o644)
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "firewall: allow[0]: port is required") {
		t.Errorf("Load(bad firewall) = %v", err)
	}
}
