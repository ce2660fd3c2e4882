package network

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/agent/config"
	"github.com/cairn-edge/cairn/agent/netnstest"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// testNet is a pair of fresh network namespaces joined by a veth pair:
// "srv0" (10.77.0.1/24) in srv, "cli0" in cli, where the Manager runs.
type testNet struct {
	srv, cli   netns.NsHandle
	srvH, cliH *netlink.Handle
	srvLink    netlink.Link
	dhcp       *testDHCP
}

func newTestNet(t *testing.T) *testNet {
	t.Helper()
	netnstest.NeedRoot(t)
	nss := netnstest.New(t, 2)
	tn := &testNet{srv: nss[0], cli: nss[1]}
	var err error
	if tn.srvH, err = netlink.NewHandleAt(tn.srv); err != nil {
		t.Fatal(err)
	}
	if tn.cliH, err = netlink.NewHandleAt(tn.cli); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tn.srvH.Close(); tn.cliH.Close() })
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: "srv0"},
		PeerName:      "cli0",
		PeerNamespace: netlink.NsFd(tn.cli),
	}
	if err := tn.srvH.LinkAdd(veth); err != nil {
		t.Fatalf("creating veth pair: %v", err)
	}
	if tn.srvLink, err = tn.srvH.LinkByName("srv0"); err != nil {
		t.Fatal(err)
	}
	addr, _ := netlink.ParseAddr("10.77.0.1/24")
	if err := tn.srvH.AddrAdd(tn.srvLink, addr); err != nil {
		t.Fatal(err)
	}
	if err := tn.srvH.LinkSetUp(tn.srvLink); err != nil {
		t.Fatal(err)
	}
	return tn
}

// testDHCP is a DHCPv4 server handing out 10.77.0.50 on srv0.
type testDHCP struct {
	lease     time.Duration
	discovers atomic.Int32
	requests  atomic.Int32
	renewals  atomic.Int32 // REQUESTs with ciaddr set (renewing, rebinding)
	unicast   atomic.Int32 // renewals that reached the server by unicast
	silent    atomic.Bool  // drop everything, as a server that is down
	mu        sync.Mutex
	hostname  string
}

func (tn *testNet) startDHCP(t *testing.T, leaseTime time.Duration) *testDHCP {
	t.Helper()
	d := &testDHCP{lease: leaseTime}
	var srv *server4.Server
	var err error
	netnstest.In(t, tn.srv, func() {
		srv, err = server4.NewServer("srv0", &net.UDPAddr{Port: dhcpv4.ServerPort}, d.handle)
	})
	if err != nil {
		t.Fatalf("starting DHCP server: %v", err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Close() })
	tn.dhcp = d
	return d
}

func (d *testDHCP) handle(conn net.PacketConn, peer net.Addr, m *dhcpv4.DHCPv4) {
	if d.silent.Load() || m.OpCode != dhcpv4.OpcodeBootRequest {
		return
	}
	var typ dhcpv4.MessageType
	switch m.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		d.discovers.Add(1)
		typ = dhcpv4.MessageTypeOffer
	case dhcpv4.MessageTypeRequest:
		d.requests.Add(1)
		if !m.ClientIPAddr.IsUnspecified() {
			d.renewals.Add(1)
			if u, ok := peer.(*net.UDPAddr); ok && !u.IP.IsUnspecified() && m.IsUnicast() {
				d.unicast.Add(1)
			}
		}
		d.mu.Lock()
		d.hostname = m.HostName()
		d.mu.Unlock()
		typ = dhcpv4.MessageTypeAck
	default:
		return
	}
	resp, err := dhcpv4.NewReplyFromRequest(m,
		dhcpv4.WithMessageType(typ),
		dhcpv4.WithYourIP(net.IPv4(10, 77, 0, 50)),
		dhcpv4.WithServerIP(net.IPv4(10, 77, 0, 1)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 77, 0, 1))),
		dhcpv4.WithOption(dhcpv4.OptSubnetMask(net.CIDRMask(24, 32))),
		dhcpv4.WithOption(dhcpv4.OptRouter(net.IPv4(10, 77, 0, 1))),
		dhcpv4.WithOption(dhcpv4.OptDNS(net.IPv4(10, 77, 0, 53))),
		dhcpv4.WithOption(dhcpv4.OptDomainName("edge.test")),
		dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(d.lease)),
	)
	if err != nil {
		return
	}
	dest := peer
	if u, ok := peer.(*net.UDPAddr); !ok || u.IP.IsUnspecified() {
		dest = &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}
	}
	conn.WriteTo(resp.ToBytes(), dest)
}

// runManager starts a Manager for cfg in the client namespace.
func (tn *testNet) runManager(t *testing.T, cfg config.Network) (*Manager, string) {
	t.Helper()
	resolv := filepath.Join(t.TempDir(), "run", "resolv.conf")
	var hostname atomic.Value
	old := sethostname
	sethostname = func(h string) error { hostname.Store(h); return nil }
	t.Cleanup(func() { sethostname = old })
	// The first packets after a veth comes up can be lost (the peer's
	// queue is activated by the kernel's link watch, asynchronously), and
	// the expiry test meets a silent server: retransmit quickly.
	oldTimeout := dhcpTimeout
	dhcpTimeout = 300 * time.Millisecond
	t.Cleanup(func() { dhcpTimeout = oldTimeout })
	m, err := New(cfg, WithResolvConf(resolv), WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	m.ns = tn.cli
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	if cfg.Hostname != "" {
		waitFor(t, "hostname set", func() bool { return hostname.Load() == cfg.Hostname })
	}
	return m, resolv
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (tn *testNet) hasAddr(t *testing.T, cidr string) bool {
	t.Helper()
	l, err := tn.cliH.LinkByName("cli0")
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := tn.cliH.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if a.IPNet.String() == cidr {
			return true
		}
	}
	return false
}

func (tn *testNet) defaultGateway(t *testing.T) string {
	t.Helper()
	routes, err := tn.cliH.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if r.Dst == nil || r.Dst.String() == "0.0.0.0/0" {
			return r.Gw.String()
		}
	}
	return ""
}

func fileText(t *testing.T, path string) string {
	t.Helper()
	b, _ := os.ReadFile(path)
	return string(b)
}

func linkStatus(m *Manager, name string) LinkStatus {
	for _, l := range m.Status().Links {
		if l.Name == name {
			return l
		}
	}
	return LinkStatus{}
}

func TestDHCPLeaseAndRenewal(t *testing.T) {
	tn := newTestNet(t)
	d := tn.startDHCP(t, 4*time.Second) // T1 2 s, T2 3.5 s
	m, resolv := tn.runManager(t, config.Network{
		Hostname:   "edge-17",
		Interfaces: []config.Interface{{Name: "cli*"}},
	})

	waitFor(t, "leased address", func() bool { return tn.hasAddr(t, "10.77.0.50/24") })
	// The route follows the address in a separate netlink call; wait for it too.
	waitFor(t, "default route via 10.77.0.1", func() bool { return tn.defaultGateway(t) == "10.77.0.1" })
	waitFor(t, "resolv.conf", func() bool { return strings.Contains(fileText(t, resolv), "nameserver 10.77.0.53\n") })
	if got := fileText(t, resolv); !strings.Contains(got, "search edge.test\n") {
		t.Errorf("resolv.conf lacks the search domain:\n%s", got)
	}
	d.mu.Lock()
	if d.hostname != "edge-17" {
		t.Errorf("DHCP request carried hostname %q, want edge-17", d.hostname)
	}
	d.mu.Unlock()

	st := linkStatus(m, "cli0")
	if st.DHCP == nil || st.DHCP.State != stateBound || st.DHCP.Address != "10.77.0.50/24" || st.Gateway != "10.77.0.1" || !st.Carrier {
		t.Fatalf("Status = %+v, DHCP %+v", st, st.DHCP)
	}
	firstExpiry := st.DHCP.Expiry
	discovers := d.discovers.Load()

	// Renewal at T1 (2 s), by unicast to the server.
	waitFor(t, "lease renewal", func() bool { return d.renewals.Load() >= 1 })
	waitFor(t, "extended expiry", func() bool {
		st := linkStatus(m, "cli0")
		return st.DHCP != nil && st.DHCP.Expiry.After(firstExpiry)
	})
	if d.unicast.Load() < 1 {
		t.Errorf("renewal did not reach the server by unicast")
	}
	if got := d.discovers.Load(); got != discovers {
		t.Errorf("%d DISCOVERs after the lease was bound, want none (the renewal must not restart discovery)", got-discovers)
	}
	if !tn.hasAddr(t, "10.77.0.50/24") {
		t.Errorf("address gone after renewal")
	}
}

func TestDHCPCarrierLossAndExpiry(t *testing.T) {
	tn := newTestNet(t)
	d := tn.startDHCP(t, 3*time.Second)
	m, resolv := tn.runManager(t, config.Network{Interfaces: []config.Interface{{Name: "cli0"}}})
	waitFor(t, "leased address", func() bool { return tn.hasAddr(t, "10.77.0.50/24") })

	// Carrier loss: the peer goes down, the lease is dropped.
	if err := tn.srvH.LinkSetDown(tn.srvLink); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "address dropped on carrier loss", func() bool { return !tn.hasAddr(t, "10.77.0.50/24") })
	waitFor(t, "lease state dropped", func() bool {
		st := linkStatus(m, "cli0")
		return !st.Carrier && st.DHCP != nil && st.DHCP.Address == ""
	})
	if got := fileText(t, resolv); strings.Contains(got, "10.77.0.53") {
		t.Errorf("resolv.conf still names the lost lease's server:\n%s", got)
	}

	// Carrier back: a new DISCOVER, a new lease.
	before := d.discovers.Load()
	if err := tn.srvH.LinkSetUp(tn.srvLink); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "new lease after carrier up", func() bool { return d.discovers.Load() > before && tn.hasAddr(t, "10.77.0.50/24") })

	// The server goes quiet: renewing and rebinding fail, the lease
	// expires, the address goes and the client discovers again.
	d.silent.Store(true)
	waitFor(t, "rebinding", func() bool {
		st := linkStatus(m, "cli0")
		return st.DHCP != nil && st.DHCP.State == stateRebinding
	})
	waitFor(t, "address removed at expiry", func() bool { return !tn.hasAddr(t, "10.77.0.50/24") })
	before = d.discovers.Load()
	d.silent.Store(false)
	waitFor(t, "lease after the server is back", func() bool { return tn.hasAddr(t, "10.77.0.50/24") })
	if d.discovers.Load() <= before {
		t.Errorf("no DISCOVER after expiry")
	}
}

func TestStaticConfig(t *testing.T) {
	tn := newTestNet(t)
	no := false
	m, resolv := tn.runManager(t, config.Network{
		Hostname: "edge-static",
		Interfaces: []config.Interface{{
			Name:      "cli0",
			DHCP:      &no,
			Addresses: []string{"10.77.0.9/24", "fd77::9/64"},
			Gateway:   "10.77.0.1",
			MTU:       1400,
		}},
		DNS: []string{"10.77.0.1", "9.9.9.9"},
	})
	waitFor(t, "static address", func() bool { return tn.hasAddr(t, "10.77.0.9/24") })
	waitFor(t, "default route", func() bool { return tn.defaultGateway(t) == "10.77.0.1" })
	l, err := tn.cliH.LinkByName("cli0")
	if err != nil {
		t.Fatal(err)
	}
	if l.Attrs().MTU != 1400 {
		t.Errorf("MTU = %d, want 1400", l.Attrs().MTU)
	}
	if lo, _ := tn.cliH.LinkByName("lo"); lo == nil || lo.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("loopback is not up")
	}
	if got, want := fileText(t, resolv), "# written by cairn-agent; changes are lost\nnameserver 10.77.0.1\nnameserver 9.9.9.9\n"; got != want {
		t.Errorf("resolv.conf = %q, want %q", got, want)
	}
	st := linkStatus(m, "cli0")
	if st.DHCP != nil || !st.Up || st.MTU != 1400 {
		t.Errorf("Status = %+v", st)
	}

	// The routes come back after an administrative down/up, which flushes them.
	if err := tn.cliH.LinkSetDown(l); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "route flushed", func() bool { return tn.defaultGateway(t) == "" })
	if err := tn.cliH.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "route restored", func() bool { return tn.defaultGateway(t) == "10.77.0.1" })
}

// TestHotplug: a link that appears after Run started is configured.
func TestHotplug(t *testing.T) {
	tn := newTestNet(t)
	tn.startDHCP(t, time.Minute)
	_, _ = tn.runManager(t, config.Network{Interfaces: []config.Interface{{Name: "cli*"}}})
	waitFor(t, "leased address", func() bool { return tn.hasAddr(t, "10.77.0.50/24") })
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "x0"}, PeerName: "cli1"}
	if err := tn.cliH.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "hotplugged link up", func() bool {
		l, err := tn.cliH.LinkByName("cli1")
		return err == nil && l.Attrs().Flags&net.FlagUp != 0
	})
	// x0 matches no entry and stays down.
	if l, err := tn.cliH.LinkByName("x0"); err != nil || l.Attrs().Flags&net.FlagUp != 0 {
		t.Errorf("x0 (unmatched) was touched: %v", err)
	}
}
