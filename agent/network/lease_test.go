package network

import (
	"net"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/insomniacslk/dhcp/rfc1035label"
)

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

// TestLeaseDomains feeds hostile domain options (a DHCP server is anyone
// on the LAN): only domain names reach resolv.conf's search line.
func TestLeaseDomains(t *testing.T) {
	for _, tt := range []struct {
		name   string
		domain string
		search []string
		want   []string
	}{
		{name: "plain", domain: "lan", search: []string{"corp.example", "lan"}, want: []string{"lan", "corp.example"}},
		{name: "trailing dot", domain: "site.example.", want: []string{"site.example"}},
		{name: "newline injects a nameserver", domain: "lan\nnameserver 203.0.113.66", search: []string{"ok.example"}, want: []string{"ok.example"}},
		{name: "carriage return", domain: "lan\roptions ndots:15", want: nil},
		{name: "space adds keywords", domain: "lan options rotate", want: nil},
		{name: "nul", domain: "lan\x00evil", want: nil},
		{name: "empty label", domain: "a..b", want: nil},
		{name: "hyphen at an edge", domain: "-lan", search: []string{"lan-"}, want: nil},
		{name: "label too long", domain: strings.Repeat("a", 64) + ".example", want: nil},
		{name: "name too long", domain: strings.Repeat("abcdefg.", 32) + "x", want: nil},
		{name: "underscore", domain: "_srv.example", want: []string{"_srv.example"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mods := []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptDomainName(tt.domain))}
			if tt.search != nil {
				mods = append(mods, dhcpv4.WithOption(dhcpv4.OptDomainSearch(&rfc1035label.Labels{Labels: tt.search})))
			}
			le, err := leaseFrom(ack(t, mods...), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(le.search, tt.want) {
				t.Errorf("search = %q, want %q", le.search, tt.want)
			}
			text, _ := resolvConf(nil, []*lease{le})
			checkResolvConf(t, text)
		})
	}
}

// FuzzLeaseFrom parses arbitrary bytes as a DHCP ACK, as the client would
// take one from the LAN, and renders resolv.conf from it: no panic, and
// every line of the file is one the resolver expects.
func FuzzLeaseFrom(f *testing.F) {
	m, _ := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeAck), dhcpv4.WithYourIP(net.IPv4(10, 0, 0, 50)),
		dhcpv4.WithOption(dhcpv4.OptDomainName("lan\nnameserver 203.0.113.66")), dhcpv4.WithOption(dhcpv4.OptDNS(net.IPv4(10, 0, 0, 1))),
		dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(time.Hour)))
	f.Add(m.ToBytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		msg, err := dhcpv4.FromBytes(b)
		if err != nil {
			return
		}
		le, err := leaseFrom(&nclient4.Lease{ACK: msg, Offer: msg}, time.Now())
		if err != nil {
			return
		}
		text, _ := resolvConf(nil, []*lease{le})
		checkResolvConf(t, text)
	})
}

// checkResolvConf fails t unless every line of text is our comment, a
// nameserver with an IP address, or a search line of domain names.
func checkResolvConf(t *testing.T, text string) {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "# "):
		case len(f) == 2 && f[0] == "nameserver" && net.ParseIP(f[1]) != nil && line == f[0]+" "+f[1]:
		case len(f) >= 2 && f[0] == "search" && line == strings.Join(f, " ") && !slices.ContainsFunc(f[1:], func(d string) bool { return !DomainName(d) }):
		default:
			t.Fatalf("resolv.conf has the line %q:\n%s", line, text)
		}
	}
}
