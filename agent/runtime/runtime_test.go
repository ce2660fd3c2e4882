package runtime

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestCNIConfig(t *testing.T) {
	tests := []struct {
		clusterCIDR, wantSubnet, wantErr string
	}{
		{"10.42.0.0/16", "10.42.0.0/24", ""},
		{"10.244.0.0/16", "10.244.0.0/24", ""},
		{"10.42.7.9/16", "10.42.0.0/24", ""}, // host bits set: the network's first /24
		{"172.16.0.0/12", "172.16.0.0/24", ""},
		{"192.168.5.0/24", "192.168.5.0/24", ""},
		{"192.168.5.0/25", "", "smaller than one node's /24"},
		{"fd00::/48", "", "not an IPv4 network"},
		{"10.42.0.0", "", "not an IPv4 network"},
		{"", "", "not an IPv4 network"},
	}
	for _, tt := range tests {
		t.Run(tt.clusterCIDR, func(t *testing.T) {
			b, err := CNIConfig(tt.clusterCIDR)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("CNIConfig(%q) error = %v, want one containing %q", tt.clusterCIDR, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var conf struct {
				Name    string
				Plugins []struct {
					Type          string
					IPMasq        bool   `json:"ipMasq"`
					IPMasqBackend string `json:"ipMasqBackend"`
					Backend       string `json:"backend"`
					IPAM          struct {
						Type   string
						Ranges [][]struct{ Subnet string }
					}
				}
			}
			if err := json.Unmarshal(b, &conf); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, b)
			}
			if len(conf.Plugins) != 2 {
				t.Fatalf("plugins: %+v", conf.Plugins)
			}
			br, pm := conf.Plugins[0], conf.Plugins[1]
			if got := br.IPAM.Ranges[0][0].Subnet; got != tt.wantSubnet {
				t.Errorf("subnet = %s, want %s", got, tt.wantSubnet)
			}
			if br.Type != "bridge" || !br.IPMasq || br.IPMasqBackend != "nftables" || br.IPAM.Type != "host-local" {
				t.Errorf("bridge plugin: %+v", br)
			}
			if pm.Type != "portmap" || pm.Backend != "nftables" {
				t.Errorf("portmap plugin: %+v", pm)
			}
			for _, p := range conf.Plugins {
				if !slices.Contains(CNIPlugins, p.Type) {
					t.Errorf("plugin %s is not in CNIPlugins %v", p.Type, CNIPlugins)
				}
			}
		})
	}
}

// TestContainerdConfigNamesCNI keeps config.toml and the constants here in step.
func TestContainerdConfigNamesCNI(t *testing.T) {
	for _, want := range []string{"bin_dirs = ['" + CNIBinDir + "']", "conf_dir = '/etc/cni/net.d'", "sandbox = '" + SandboxImage + "'"} {
		if !strings.Contains(string(ContainerdConfig), want) {
			t.Errorf("config.toml lacks %s", want)
		}
	}
}
