package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent/clock"
)

func TestRoundTrip(t *testing.T) {
	c := Config{
		Network:  Network{Hostname: "edge-1", DNS: []string{"9.9.9.9"}},
		Clock:    clock.Config{NTP: []string{"time.example"}},
		Services: []Service{{Name: "hello", Image: "hello:1"}},
		API:      API{Port: 7443, Metrics: &PlainMetrics{Interface: "eth0"}},
	}
	data, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "agent.yaml")
	os.WriteFile(p, data, 0o644)
	got, err := Load(p)
	if err != nil {
		t.Fatalf("Load: %v\n%s", err, data)
	}
	if got.Network.Hostname != "edge-1" || len(got.Services) != 1 || got.Services[0].Name != "hello" || got.API.Port != 7443 || got.API.Metrics.Interface != "eth0" || got.API.Metrics.ListenPort() != 9100 || got.Clock.NTP[0] != "time.example" {
		t.Errorf("round trip = %+v", got)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct{ yaml, want string }{
		{"colour: red\n", "field colour not found"},
		{"api:\n  port: 70000\n", "is not a TCP port"},
		{"api:\n  metrics: {port: 9100}\n", `api.metrics.interface "" is not an interface name`},
		{"api:\n  metrics: {interface: eth0, port: 7443}\n", "is the node API's port"},
		{"api:\n  metrics: {interface: eth0, port: -1}\n", "not a TCP port"},
		{"services:\n  - name: a\n    image: x\n    dependsOn: [b]\n", "services:"},
	}
	for _, tt := range tests {
		p := filepath.Join(t.TempDir(), "agent.yaml")
		os.WriteFile(p, []byte(tt.yaml), 0o644)
		if _, err := Load(p); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Load(%q) error = %v, want %q", tt.yaml, err, tt.want)
		}
	}
	if c, err := Load(filepath.Join(t.TempDir(), "none.yaml")); err != nil || len(c.Services) != 0 {
		t.Errorf("Load(missing) = %+v, %v; want an empty config", c, err)
	}
}
