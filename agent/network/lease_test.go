package network

import (
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
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
