package config

import (
	"errors"
	"io/fs"
	"reflect"
	"strings"
	"testing"
)

func boolp(b bool) *bool { return &b }

func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		name    string
		cfg     Network
		wantErr string // substring; "" = valid
	}{
		{name: "empty", cfg: Network{}},
		{name: "static", cfg: Network{Hostname: "edge-1.example", Interfaces: []Interface{{Name: "eth0", Addresses: []string{"192.168.1.17/24", "fd00::17/64"}, Gateway: "192.168.1.1", MTU: 1500}}, DNS: []string{"192.168.1.1", "2620:fe::fe"}}},
		{name: "glob dhcp", cfg: Network{Interfaces: []Interface{{Name: "en*"}, {Name: "eth[0-9]", DHCP: boolp(true)}}}},
		{name: "point to point /32", cfg: Network{Interfaces: []Interface{{Name: "eth0", Addresses: []string{"10.0.0.5/32"}}}}},
		{name: "bad cidr", cfg: Network{Interfaces: []Interface{{Name: "eth0", Addresses: []string{"192.168.1.17"}}}}, wantErr: `addresses[0]: "192.168.1.17" is not an address in CIDR form`},
		{name: "network address", cfg: Network{Interfaces: []Interface{{Name: "eth0", Addresses: []string{"192.168.1.0/24"}}}}, wantErr: "is a network address"},
		{name: "gateway outside", cfg: Network{Interfaces: []Interface{{Name: "eth0", Addresses: []string{"192.168.1.17/24"}, Gateway: "192.168.2.1"}}}, wantErr: "gateway 192.168.2.1 is outside the subnet of every address"},
		{name: "gateway without address", cfg: Network{Interfaces: []Interface{{Name: "eth0", Gateway: "192.168.2.1"}}}, wantErr: "needs a static address"},
		{name: "gateway not an ip", cfg: Network{Interfaces: []Interface{{Name: "eth0", Addresses: []string{"192.168.1.17/24"}, Gateway: "router"}}}, wantErr: `gateway "router" is not an IP address`},
		{name: "duplicate", cfg: Network{Interfaces: []Interface{{Name: "eth0"}, {Name: "eth0"}}}, wantErr: `name "eth0" is already used by interfaces[0]`},
		{name: "missing name", cfg: Network{Interfaces: []Interface{{}}}, wantErr: "interfaces[0]: name is required"},
		{name: "long name", cfg: Network{Interfaces: []Interface{{Name: "enx0123456789abcdef"}}}, wantErr: "at most 15"},
		{name: "bad glob", cfg: Network{Interfaces: []Interface{{Name: "en["}}}, wantErr: "not a valid glob"},
		{name: "slash", cfg: Network{Interfaces: []Interface{{Name: "en/0"}}}, wantErr: "contains '/'"},
		{name: "mtu", cfg: Network{Interfaces: []Interface{{Name: "eth0", MTU: 20}}}, wantErr: "mtu 20 is outside"},
		{name: "dns", cfg: Network{DNS: []string{"dns.google"}}, wantErr: `dns[0]: "dns.google" is not an IP address`},
		{name: "hostname underscore", cfg: Network{Hostname: "edge_1"}, wantErr: `'_' is not allowed`},
		{name: "hostname dash", cfg: Network{Hostname: "-edge"}, wantErr: "dot-separated part"},
		{name: "hostname long", cfg: Network{Hostname: strings.Repeat("a", 65)}, wantErr: "at most 64"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Validate() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestUsesDHCP(t *testing.T) {
	for _, tt := range []struct {
		in   Interface
		want bool
	}{
		{Interface{Name: "eth0"}, true},
		{Interface{Name: "eth0", Addresses: []string{"10.0.0.2/24"}}, false},
		{Interface{Name: "eth0", Addresses: []string{"10.0.0.2/24"}, DHCP: boolp(true)}, true},
		{Interface{Name: "eth0", DHCP: boolp(false)}, false},
	} {
		if got := tt.in.UsesDHCP(); got != tt.want {
			t.Errorf("%+v.UsesDHCP() = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestInterfaceFor(t *testing.T) {
	cfg := Network{Interfaces: []Interface{{Name: "eth0", Addresses: []string{"10.0.0.2/24"}}, {Name: "eth*"}}}
	for _, tt := range []struct {
		cfg      Network
		link     string
		physical bool
		want     string // matched entry's name, "" = not managed
	}{
		{cfg, "eth0", true, "eth0"},
		{cfg, "eth1", true, "eth*"},
		{cfg, "enp3s0", true, ""},
		{cfg, "eth1", false, "eth*"}, // listed names match any link type
		{Network{}, "enp3s0", true, "enp3s0"},
		{Network{}, "veth1234", false, ""}, // the default leaves virtual links alone
	} {
		got, ok := tt.cfg.InterfaceFor(tt.link, tt.physical)
		if (tt.want == "") == ok || ok && got.Name != tt.want {
			t.Errorf("InterfaceFor(%q, %v) = %q, %v; want %q", tt.link, tt.physical, got.Name, ok, tt.want)
		}
	}
}

func TestParseNodeFile(t *testing.T) {
	for _, tt := range []struct {
		name    string
		in      string
		want    Network
		wantErr string
	}{
		{name: "empty", in: "", want: Network{}},
		{name: "comments only", in: "# nothing here\n", want: Network{}},
		{name: "hostname and static ip", in: "hostname: edge-17\ninterfaces:\n  - name: eth0\n    addresses: [192.168.1.17/24]\n    gateway: 192.168.1.1\ndns: [192.168.1.1]\n",
			want: Network{Hostname: "edge-17", Interfaces: []Interface{{Name: "eth0", Addresses: []string{"192.168.1.17/24"}, Gateway: "192.168.1.1"}}, DNS: []string{"192.168.1.1"}}},
		{name: "windows notepad", in: "\xef\xbb\xbfhostname: edge-18\r\n", want: Network{Hostname: "edge-18"}},
		{name: "typo", in: "hostnme: edge-17\n", wantErr: "field hostnme not found"},
		{name: "wrong type", in: "interfaces: eth0\n", wantErr: "cannot unmarshal"},
		{name: "invalid value", in: "hostname: edge_17\n", wantErr: "is not allowed"},
		{name: "two documents", in: "hostname: a\n---\nhostname: b\n", wantErr: "more than one YAML document"},
		{name: "not yaml", in: "hostname: [\n", wantErr: "yaml"},
		{name: "too big", in: "#" + strings.Repeat("x", maxNodeFile), wantErr: "more than the"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseNodeFile([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseNodeFile() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseNodeFile() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	image := Network{
		Hostname:   "cairn",
		Interfaces: []Interface{{Name: "eth*"}, {Name: "wlan0", DHCP: boolp(true)}},
		DNS:        []string{"9.9.9.9"},
	}
	for _, tt := range []struct {
		name       string
		base, node Network
		want       Network
	}{
		{name: "empty node file", base: image, node: Network{}, want: image},
		{name: "hostname only", base: image, node: Network{Hostname: "edge-17"},
			want: Network{Hostname: "edge-17", Interfaces: image.Interfaces, DNS: image.DNS}},
		{name: "replace entry by name", base: image, node: Network{Interfaces: []Interface{{Name: "wlan0", DHCP: boolp(false)}}},
			want: Network{Hostname: "cairn", Interfaces: []Interface{{Name: "eth*"}, {Name: "wlan0", DHCP: boolp(false)}}, DNS: image.DNS}},
		{name: "new name goes first", base: image, node: Network{Interfaces: []Interface{{Name: "eth0", Addresses: []string{"10.0.0.17/24"}, Gateway: "10.0.0.1"}}, DNS: []string{"10.0.0.1"}},
			want: Network{Hostname: "cairn", Interfaces: []Interface{{Name: "eth0", Addresses: []string{"10.0.0.17/24"}, Gateway: "10.0.0.1"}, {Name: "eth*"}, {Name: "wlan0", DHCP: boolp(true)}}, DNS: []string{"10.0.0.1"}}},
		{name: "default image config", base: Network{}, node: Network{Interfaces: []Interface{{Name: "eth0", Addresses: []string{"10.0.0.17/24"}}}},
			want: Network{Interfaces: []Interface{{Name: "eth0", Addresses: []string{"10.0.0.17/24"}}}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := MergeNode(tt.base, tt.node); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("MergeNode() =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestApplyNodeFile(t *testing.T) {
	image := Network{Hostname: "cairn"}
	for _, tt := range []struct {
		name    string
		data    string
		readErr error
		want    Network
		wantErr string
	}{
		{name: "missing", readErr: fs.ErrNotExist, want: image},
		{name: "good", data: "hostname: edge-2\n", want: Network{Hostname: "edge-2"}},
		{name: "malformed", data: "hostname: [\n", want: image, wantErr: "node file /boot/cairn-node.yaml ignored, using the image's network settings: yaml"},
		{name: "unreadable", readErr: errors.New("input/output error"), want: image, wantErr: "input/output error"},
		{name: "invalid", data: "interfaces:\n  - name: eth0\n    gateway: 10.0.0.1\n", want: image, wantErr: "needs a static address"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			old := readFile
			readFile = func(string) ([]byte, error) { return []byte(tt.data), tt.readErr }
			defer func() { readFile = old }()
			got, err := ApplyNodeFile(image, NodeFile, nil)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("config = %+v, want %+v", got, tt.want)
			}
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("error = %v, want %q", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines, the console wants one: %q", err)
			}
		})
	}
}

// FuzzParseNodeFile: the node file comes from whoever holds the SD card.
func FuzzParseNodeFile(f *testing.F) {
	f.Add([]byte("hostname: edge-17\ninterfaces:\n  - name: eth0\n    addresses: [192.168.1.17/24]\n    gateway: 192.168.1.1\n    mtu: 1500\ndns: [192.168.1.1]\n"))
	f.Add([]byte("interfaces:\n  - name: \"en*\"\n    dhcp: true\n"))
	f.Add([]byte("\xef\xbb\xbfhostname: a\r\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseNodeFile(data)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("ParseNodeFile accepted an invalid config: %v", err)
		}
		if err := MergeNode(Network{Interfaces: []Interface{{Name: "eth*"}}}, c).Validate(); err != nil && len(c.Interfaces) == 0 {
			t.Fatalf("merging a valid file without interfaces broke a valid config: %v", err)
		}
	})
}
