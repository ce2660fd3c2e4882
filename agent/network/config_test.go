package network

import (
	"errors"
	"io/fs"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
)

func boolp(b bool) *bool { return &b }

func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		name    string
		cfg     Config
		wantErr string // substring; "" = valid
	}{
		{name: "empty", cfg: Config{}},
		{name: "static", cfg: Config{Hostname: "edge-1.example", Interfaces: []Interface{{Name: "eth0", Addresses: []string{"192.168.1.17/24", "fd00::17/64"}, Gateway: "192.168.1.1", MTU: 1500}}, DNS: []string{"192.168.1.1", "2620:fe::fe"}}},
		{name: "glob dhcp", cfg: Config{Interfaces: []Interface{{Name: "en*"}, {Name: "eth[0-9]", DHCP: boolp(true)}}}},
		{name: "point to point /32", cfg: Config{Interfaces: []Interface{{Name: "eth0", Addresses: []string{"10.0.0.5/32"}}}}},
		{name: "bad cidr", cfg: Config{Interfaces: []Interface{{Name: "eth0", Addresses: []string{"192.168.1.17"}}}}, wantErr: `addresses[0]: "192.168.1.17" is not an address in CIDR form`},
		{name: "network address", cfg: Config{Interfaces: []Interface{{Name: "eth0", Addresses: []string{"192.168.1.0/24"}}}}, wantErr: "is a network address"},
		{name: "gateway outside", cfg: Config{Interfaces: []Interface{{Name: "eth0", Addresses: []string{"192.168.1.17/24"}, Gateway: "192.168.2.1"}}}, wantErr: "gateway 192.168.2.1 is outside the subnet of every address"},
		{name: "gateway without address", cfg: Config{Interfaces: []Interface{{Name: "eth0", Gateway: "192.168.2.1"}}}, wantErr: "needs a static address"},
		{name: "gateway not an ip", cfg: Config{Interfaces: []Interface{{Name: "eth0", Addresses: []string{"192.168.1.17/24"}, Gateway: "router"}}}, wantErr: `gateway "router" is not an IP address`},
		{name: "duplicate", cfg: Config{Interfaces: []Interface{{Name: "eth0"}, {Name: "eth0"}}}, wantErr: `name "eth0" is already used by interfaces[0]`},
		{name: "missing name", cfg: Config{Interfaces: []Interface{{}}}, wantErr: "interfaces[0]: name is required"},
		{name: "long name", cfg: Config{Interfaces: []Interface{{Name: "enx0123456789abcdef"}}}, wantErr: "at most 15"},
		{name: "bad glob", cfg: Config{Interfaces: []Interface{{Name: "en["}}}, wantErr: "not a valid glob"},
		{name: "slash", cfg: Config{Interfaces: []Interface{{Name: "en/0"}}}, wantErr: "contains '/'"},
		{name: "mtu", cfg: Config{Interfaces: []Interface{{Name: "eth0", MTU: 20}}}, wantErr: "mtu 20 is outside"},
		{name: "dns", cfg: Config{DNS: []string{"dns.google"}}, wantErr: `dns[0]: "dns.google" is not an IP address`},
		{name: "hostname underscore", cfg: Config{Hostname: "edge_1"}, wantErr: `'_' is not allowed`},
		{name: "hostname dash", cfg: Config{Hostname: "-edge"}, wantErr: "dot-separated part"},
		{name: "hostname long", cfg: Config{Hostname: strings.Repeat("a", 65)}, wantErr: "at most 64"},
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
	cfg := Config{Interfaces: []Interface{{Name: "eth0", Addresses: []string{"10.0.0.2/24"}}, {Name: "eth*"}}}
	for _, tt := range []struct {
		cfg      Config
		link     string
		physical bool
		want     string // matched entry's name, "" = not managed
	}{
		{cfg, "eth0", true, "eth0"},
		{cfg, "eth1", true, "eth*"},
		{cfg, "enp3s0", true, ""},
		{cfg, "eth1", false, "eth*"}, // listed names match any link type
		{Config{}, "enp3s0", true, "enp3s0"},
		{Config{}, "veth1234", false, ""}, // the default leaves virtual links alone
	} {
		got, ok := tt.cfg.interfaceFor(tt.link, tt.physical)
		if (tt.want == "") == ok || ok && got.Name != tt.want {
			t.Errorf("interfaceFor(%q, %v) = %q, %v; want %q", tt.link, tt.physical, got.Name, ok, tt.want)
		}
	}
}

func TestParseNodeFile(t *testing.T) {
	for _, tt := range []struct {
		name    string
		in      string
		want    Config
		wantErr string
	}{
		{name: "empty", in: "", want: Config{}},
		{name: "comments only", in: "# nothing here\n", want: Config{}},
		{name: "hostname and static ip", in: "hostname: edge-17\ninterfaces:\n  - name: eth0\n    addresses: [192.168.1.17/24]\n    gateway: 192.168.1.1\ndns: [192.168.1.1]\n",
			want: Config{Hostname: "edge-17", Interfaces: []Interface{{Name: "eth0", Addresses: []string{"192.168.1.17/24"}, Gateway: "192.168.1.1"}}, DNS: []string{"192.168.1.1"}}},
		{name: "windows notepad", in: "\xef\xbb\xbfhostname: edge-18\r\n", want: Config{Hostname: "edge-18"}},
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
	image := Config{
		Hostname:   "cairn",
		Interfaces: []Interface{{Name: "eth*"}, {Name: "wlan0", DHCP: boolp(true)}},
		DNS:        []string{"9.9.9.9"},
	}
	for _, tt := range []struct {
		name       string
		base, node Config
		want       Config
	}{
		{name: "empty node file", base: image, node: Config{}, want: image},
		{name: "hostname only", base: image, node: Config{Hostname: "edge-17"},
			want: Config{Hostname: "edge-17", Interfaces: image.Interfaces, DNS: image.DNS}},
		{name: "replace entry by name", base: image, node: Config{Interfaces: []Interface{{Name: "wlan0", DHCP: boolp(false)}}},
			want: Config{Hostname: "cairn", Interfaces: []Interface{{Name: "eth*"}, {Name: "wlan0", DHCP: boolp(false)}}, DNS: image.DNS}},
		{name: "new name goes first", base: image, node: Config{Interfaces: []Interface{{Name: "eth0", Addresses: []string{"10.0.0.17/24"}, Gateway: "10.0.0.1"}}, DNS: []string{"10.0.0.1"}},
			want: Config{Hostname: "cairn", Interfaces: []Interface{{Name: "eth0", Addresses: []string{"10.0.0.17/24"}, Gateway: "10.0.0.1"}, {Name: "eth*"}, {Name: "wlan0", DHCP: boolp(true)}}, DNS: []string{"10.0.0.1"}}},
		{name: "default image config", base: Config{}, node: Config{Interfaces: []Interface{{Name: "eth0", Addresses: []string{"10.0.0.17/24"}}}},
			want: Config{Interfaces: []Interface{{Name: "eth0", Addresses: []string{"10.0.0.17/24"}}}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Merge(tt.base, tt.node); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Merge() =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestApplyNodeFile(t *testing.T) {
	image := Config{Hostname: "cairn"}
	for _, tt := range []struct {
		name    string
		data    string
		readErr error
		want    Config
		wantErr string
	}{
		{name: "missing", readErr: fs.ErrNotExist, want: image},
		{name: "good", data: "hostname: edge-2\n", want: Config{Hostname: "edge-2"}},
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
		if err := Merge(Config{Interfaces: []Interface{{Name: "eth*"}}}, c).Validate(); err != nil && len(c.Interfaces) == 0 {
			t.Fatalf("merging a valid file without interfaces broke a valid config: %v", err)
		}
	})
}

func ack(t *testing.T, mods ...dhcpv4.Modifier) *nclient4.Lease {
	t.Helper()
	m, err := dhcpv4.New(append([]dhcpv4.Modifier{
		dhcpv4.WithMessageType(dhcpv4.MessageTypeAck),
		dhcpv4.WithYourIP(net.IPv4(10, 0, 0, 50)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 0, 0, 1))),
	}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return &nclient4.Lease{ACK: m, Offer: m}
}

func TestLeaseFrom(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name           string
		mods           []dhcpv4.Modifier
		addr           string
		t1, t2, expiry time.Duration
		infinite       bool
		wantErr        bool
	}{
		{name: "defaults T1 T2", mods: []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptSubnetMask(net.CIDRMask(24, 32))), dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(time.Hour))},
			addr: "10.0.0.50/24", t1: 30 * time.Minute, t2: 52*time.Minute + 30*time.Second, expiry: time.Hour},
		{name: "server T1 T2", mods: []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(time.Hour)), dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(10 * time.Minute)), dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(20 * time.Minute))},
			addr: "10.0.0.50/8", t1: 10 * time.Minute, t2: 20 * time.Minute, expiry: time.Hour},
		{name: "T2 before T1 repaired", mods: []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(time.Hour)), dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(40 * time.Minute)), dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(20 * time.Minute))},
			addr: "10.0.0.50/8", t1: 40 * time.Minute, t2: 55 * time.Minute, expiry: time.Hour},
		{name: "no lease time", addr: "10.0.0.50/8", t1: 30 * time.Minute, t2: 52*time.Minute + 30*time.Second, expiry: time.Hour},
		{name: "infinite", mods: []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(infiniteLease))}, addr: "10.0.0.50/8", infinite: true},
		{name: "no address", mods: []dhcpv4.Modifier{dhcpv4.WithYourIP(net.IPv4zero)}, wantErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			le, err := leaseFrom(ack(t, tt.mods...), now)
			if tt.wantErr {
				if err == nil {
					t.Fatal("want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if le.addr.String() != tt.addr || le.infinite != tt.infinite {
				t.Errorf("addr %s infinite %v, want %s %v", le.addr, le.infinite, tt.addr, tt.infinite)
			}
			if tt.infinite {
				return
			}
			if got := []time.Duration{le.t1.Sub(now), le.t2.Sub(now), le.expiry.Sub(now)}; !reflect.DeepEqual(got, []time.Duration{tt.t1, tt.t2, tt.expiry}) {
				t.Errorf("T1, T2, expiry = %v, want %v %v %v", got, tt.t1, tt.t2, tt.expiry)
			}
		})
	}
}

func TestRetryWait(t *testing.T) {
	for _, tt := range []struct{ left, floor, want time.Duration }{
		{10 * time.Minute, time.Minute, 5 * time.Minute},
		{90 * time.Second, time.Minute, time.Minute},
		{30 * time.Second, time.Minute, 30 * time.Second},
	} {
		if got := retryWait(tt.left, tt.floor); got != tt.want {
			t.Errorf("retryWait(%v, %v) = %v, want %v", tt.left, tt.floor, got, tt.want)
		}
	}
}

func TestResolvConf(t *testing.T) {
	l1 := &lease{dns: []net.IP{net.IPv4(10, 0, 0, 1), net.IPv4(9, 9, 9, 9)}, search: []string{"lan"}}
	l2 := &lease{dns: []net.IP{net.IPv4(10, 1, 0, 1)}, search: []string{"lan", "corp"}}
	for _, tt := range []struct {
		name   string
		static []string
		leases []*lease
		want   string
	}{
		{name: "nothing", want: "# written by cairn-agent; changes are lost\n"},
		{name: "static first, deduplicated, at most 3", static: []string{"9.9.9.9"}, leases: []*lease{l1, l2},
			want: "# written by cairn-agent; changes are lost\nnameserver 9.9.9.9\nnameserver 10.0.0.1\nnameserver 10.1.0.1\nsearch lan corp\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got, _ := resolvConf(tt.static, tt.leases); got != tt.want {
				t.Errorf("resolvConf() =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}
