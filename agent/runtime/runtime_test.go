package runtime

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"text/template"
)

func TestCNIConfig(t *testing.T) {
	tests := []struct {
		name        string
		podCIDRs    []string
		wantSubnets []string
		wantErr     string
	}{
		{"first node", []string{"10.42.0.0/24"}, []string{"10.42.0.0/24"}, ""},
		{"second node", []string{"10.42.1.0/24"}, []string{"10.42.1.0/24"}, ""},
		{"other cluster", []string{"10.244.3.0/24"}, []string{"10.244.3.0/24"}, ""},
		{"dual stack", []string{"10.42.2.0/24", "fd00:42:0:2::/64"}, []string{"10.42.2.0/24", "fd00:42:0:2::/64"}, ""},
		{"none", nil, nil, "no podCIDR"},
		{"not a network", []string{"10.42.0.1"}, nil, "not a network"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := CNIConfig(tt.podCIDRs...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("CNIConfig(%q) error = %v, want one containing %q", tt.podCIDRs, err, tt.wantErr)
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
					Bridge        string `json:"bridge"`
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
			var got []string
			for _, r := range br.IPAM.Ranges {
				for _, s := range r {
					got = append(got, s.Subnet)
				}
			}
			if !slices.Equal(got, tt.wantSubnets) {
				t.Errorf("subnets = %q, want %q", got, tt.wantSubnets)
			}
			if br.Bridge != PodBridge {
				t.Errorf("bridge = %q, want PodBridge %q (the host firewall admits that one)", br.Bridge, PodBridge)
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

// TestCNITemplateAsContainerd renders the template the way containerd
// does (template.ParseFiles, its own struct with these field names), so a
// placeholder containerd does not know fails here, not on a node.
func TestCNITemplateAsContainerd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "10-cairn.conflist.tmpl")
	if err := os.WriteFile(path, CNITemplate, 0o644); err != nil {
		t.Fatal(err)
	}
	tmpl, err := template.ParseFiles(path)
	if err != nil {
		t.Fatal(err)
	}
	// containerd v2.4's cniConfigTemplate.
	type cniConfigTemplate struct {
		PodCIDR       string
		PodCIDRRanges []string
		Routes        []string
	}
	var b strings.Builder
	if err := tmpl.Execute(&b, cniConfigTemplate{PodCIDR: "10.42.5.0/24", PodCIDRRanges: []string{"10.42.5.0/24"}, Routes: []string{"0.0.0.0/0"}}); err != nil {
		t.Fatal(err)
	}
	if !json.Valid([]byte(b.String())) || !strings.Contains(b.String(), `"subnet": "10.42.5.0/24"`) {
		t.Errorf("rendered:\n%s", b.String())
	}
}

func TestCheckClusterCIDR(t *testing.T) {
	tests := []struct {
		clusterCIDR, wantErr string
	}{
		{"10.42.0.0/16", ""},
		{"10.42.7.9/16", ""},
		{"172.16.0.0/12", ""},
		{"192.168.5.0/24", ""},
		{"192.168.5.0/25", "smaller than one node's /24"},
		{"fd00::/48", "not an IPv4 network"},
		{"10.42.0.0", "not an IPv4 network"},
		{"", "not an IPv4 network"},
	}
	for _, tt := range tests {
		t.Run(tt.clusterCIDR, func(t *testing.T) {
			err := CheckClusterCIDR(tt.clusterCIDR)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("CheckClusterCIDR(%q) = %v, want error containing %q", tt.clusterCIDR, err, tt.wantErr)
			}
		})
	}
}

// TestContainerdConfigNamesCNI keeps config.toml and the constants here in step.
func TestContainerdConfigNamesCNI(t *testing.T) {
	for _, want := range []string{
		"bin_dirs = ['" + CNIBinDir + "']",
		"conf_dir = '" + CNIConfDir + "'",
		"conf_template = '" + CNITemplatePath + "'",
		"sandbox = '" + SandboxImage + "'",
	} {
		if !strings.Contains(string(ContainerdConfig), want) {
			t.Errorf("config.toml lacks %s", want)
		}
	}
}
