package config

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	hostname = func() (string, error) { return "Edge-1", nil }
	tests := []struct {
		name  string
		doc   string
		check func(t *testing.T, c *Config)
	}{
		{"empty: defaults", "", func(t *testing.T, c *Config) {
			if got, want := c.NodeName, "edge-1"; got != want {
				t.Errorf("NodeName = %q, want %q", got, want)
			}
			if got, want := c.CertDir, "/var/lib/cairn/kube/pki"; got != want {
				t.Errorf("CertDir = %q, want %q", got, want)
			}
			if got, want := c.ServiceIP().String(), "10.43.0.1"; got != want {
				t.Errorf("ServiceIP = %q, want %q", got, want)
			}
			if got, want := c.APIPort, 6443; got != want {
				t.Errorf("APIPort = %d, want %d", got, want)
			}
		}},
		{"yaml", "dataDir: /data\nnodeName: n1\nnodeIP: 192.168.1.10\napiPort: 7443\nextraArgs:\n  kubelet: [--max-pods=50]\n", func(t *testing.T, c *Config) {
			if c.CertDir != "/data/pki" || c.NodeName != "n1" || c.APIPort != 7443 || c.ExtraArgs["kubelet"][0] != "--max-pods=50" {
				t.Errorf("got %+v", c)
			}
			if got, want := c.KubeconfigFor("scheduler"), "/data/kubeconfig/scheduler.kubeconfig"; got != want {
				t.Errorf("KubeconfigFor = %q, want %q", got, want)
			}
		}},
		{"json", `{"dataDir": "/d", "controlPlaneOnly": true, "memoryLimitMiB": 200}`, func(t *testing.T, c *Config) {
			if !c.ControlPlaneOnly || c.MemoryLimitMiB != 200 {
				t.Errorf("got %+v", c)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"unknown field", "dataDri: /x", `unknown field "dataDri"`},
		{"relative dir", "dataDir: data", `dataDir "data" is not an absolute path`},
		{"bad node IP", "nodeIP: 10.0.0", `nodeIP "10.0.0" is not an IP address`},
		{"DNS outside services", "clusterDNS: 10.96.0.10", "outside serviceCIDR"},
		{"bad CIDR", "clusterCIDR: 10.42.0.0", "is not a CIDR"},
		{"bad server", "server: http://x:6443", "is not an https:// URL"},
		{"unknown component", "extraArgs: {etcd: [--x=1]}", `unknown component "etcd"`},
		{"not a flag", "extraArgs: {kubelet: [max-pods=1]}", "write it as --name=value"},
		{"loopback node IP", "nodeIP: 127.0.0.1", "is a loopback address"},
		{"bad port", "apiPort: 70000", "not a TCP port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse = %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestCheckAgent(t *testing.T) {
	tests := []struct {
		name string
		c    Config
		ok   bool
	}{
		{"server", Config{Server: "https://10.0.0.1:6443"}, true},
		{"kubeconfig", Config{Kubeconfig: "/k"}, true},
		{"neither", Config{}, false},
		{"control plane only", Config{Server: "https://x", ControlPlaneOnly: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.c.CheckAgent(); (err == nil) != tt.ok {
				t.Errorf("CheckAgent = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
