package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// DHCP client states, as RFC 2131 section 4.4 names them.
const (
	stateDiscovering = "discovering"
	stateBound       = "bound"
	stateRenewing    = "renewing"
	stateRebinding   = "rebinding"
)

// Timing of the DHCP client. Variables so tests can shorten them.
var (
	// dhcpTimeout is how long one DHCP exchange waits for an answer; the
	// library doubles it on each of dhcpRetries tries.
	dhcpTimeout = 2 * time.Second
	dhcpRetries = 3
	// discoverBackoffMax caps the wait between rounds of discovery on a
	// link where no server answers.
	discoverBackoffMax = 30 * time.Second
	// defaultLeaseTime applies when an ACK carries no lease time (option 51
	// is mandatory, but some servers are wrong).
	defaultLeaseTime = time.Hour
)

// lease is a bound DHCP lease as the Manager applies it.
type lease struct {
	addr    *net.IPNet
	server  net.IP
	routers []net.IP
	// routes are from option 121 (classless static routes); when present
	// they replace the routers option (RFC 3442).
	routes                   []*dhcpv4.Route
	dns                      []net.IP
	search                   []string
	ntp                      []net.IP
	obtained, t1, t2, expiry time.Time
	// infinite leases never expire (lease time 0xffffffff).
	infinite bool
	// applied are the routes added for this lease, to remove them later.
	applied []netlink.Route
	raw     *nclient4.Lease
}

// infiniteLease is the lease time that means "forever" (RFC 2131 3.3).
const infiniteLease = 0xffffffff * time.Second

// leaseFrom reads what the Manager needs from an ACK, obtained at now.
func leaseFrom(l *nclient4.Lease, now time.Time) (*lease, error) {
	if l == nil || l.ACK == nil {
		return nil, errors.New("no ACK in lease")
	}
	ack := l.ACK
	ip := ack.YourIPAddr.To4()
	if ip == nil || ip.IsUnspecified() || ip.IsMulticast() || ip.Equal(net.IPv4bcast) {
		return nil, fmt.Errorf("ACK offers no usable address (yiaddr %v)", ack.YourIPAddr)
	}
	mask := ack.SubnetMask()
	if ones, bits := mask.Size(); bits != 32 || ones == 0 {
		mask = ip.DefaultMask()
	}
	le := &lease{
		addr:     &net.IPNet{IP: ip, Mask: mask},
		server:   ack.ServerIdentifier(),
		routes:   ack.ClasslessStaticRoute(),
		dns:      ack.DNS(),
		ntp:      ack.NTPServers(),
		obtained: now,
		raw:      l,
	}
	if le.server == nil {
		le.server = ack.ServerIPAddr
	}
	for _, r := range ack.Router() {
		if r4 := r.To4(); r4 != nil && !r4.IsUnspecified() {
			le.routers = append(le.routers, r4)
		}
	}
	// The domain options arrive from anyone on the LAN and end up in
	// resolv.conf: only domain names go there, never a line break or a
	// second keyword.
	domains := []string{ack.DomainName()}
	if s := ack.DomainSearch(); s != nil {
		domains = append(domains, s.Labels...)
	}
	for _, d := range domains {
		if d = strings.TrimSuffix(d, "."); DomainName(d) && !slices.Contains(le.search, d) {
			le.search = append(le.search, d)
		}
	}
	lt := ack.IPAddressLeaseTime(defaultLeaseTime)
	if lt <= 0 {
		lt = defaultLeaseTime
	}
	if lt >= infiniteLease {
		le.infinite = true
		return le, nil
	}
	t1 := ack.IPAddressRenewalTime(lt / 2)
	t2 := ack.IPAddressRebindingTime(lt * 7 / 8)
	if t1 <= 0 || t1 >= lt {
		t1 = lt / 2
	}
	if t2 <= t1 || t2 >= lt {
		t2 = t1 + (lt-t1)*3/4
	}
	le.t1, le.t2, le.expiry = now.Add(t1), now.Add(t2), now.Add(lt)
	return le, nil
}

// DomainName reports whether s is a domain name as resolv.conf's search
// line takes one (RFC 1035's syntax, with the underscores DNS allows):
// at most 253 bytes of dot-separated labels of 1 to 63 letters, digits,
// hyphens or underscores, no label starting or ending with a hyphen.
func DomainName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// retryWait is how long to wait before the next renewal or rebinding
// try: half the time left until deadline, at least floor (RFC 2131
// 4.4.5 says 60 s; short test leases scale it down), never past deadline.
func retryWait(left, floor time.Duration) time.Duration {
	w := max(left/2, floor)
	return min(w, left)
}

// dhcpClient is one DHCP client run on a link, from carrier up to
// carrier down.
type dhcpClient struct {
	m     *Manager
	index int
	name  string
	mac   net.HardwareAddr
	gen   int
}

var (
	errNak     = errors.New("server refused the lease (NAK)")
	errExpired = errors.New("lease expired")
)

func (c *dhcpClient) run(ctx context.Context) {
	log := c.m.log.With("link", c.name)
	for ctx.Err() == nil {
		le, err := c.discover(ctx)
		if err != nil {
			return
		}
		for ctx.Err() == nil {
			if !c.m.bind(c, le) {
				return
			}
			next, err := c.keep(ctx, le)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				log.Warn("dhcp lease lost, discovering again", "address", le.addr.String(), "reason", err)
				c.m.drop(c, err.Error())
				break
			}
			le = next
		}
	}
}

func (c *dhcpClient) modifiers() []dhcpv4.Modifier {
	mods := []dhcpv4.Modifier{dhcpv4.WithRequestedOptions(
		dhcpv4.OptionClasslessStaticRoute,
		dhcpv4.OptionNTPServers,
		dhcpv4.OptionDNSDomainSearchList,
		dhcpv4.OptionIPAddressLeaseTime,
		dhcpv4.OptionRenewTimeValue,
		dhcpv4.OptionRebindingTimeValue,
	)}
	if h := c.m.cfg.Hostname; h != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptHostName(h)))
	}
	return mods
}

// rawClient opens a client on an AF_PACKET socket: it works before the
// link has an address and sends to the broadcast addresses.
func (c *dhcpClient) rawClient() (*nclient4.Client, error) {
	var conn net.PacketConn
	err := c.m.inNS(func() (err error) {
		conn, err = nclient4.NewRawUDPConn(c.name, nclient4.ClientPort)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("opening a packet socket on %s: %w", c.name, err)
	}
	return nclient4.NewWithConn(conn, c.mac, nclient4.WithTimeout(dhcpTimeout), nclient4.WithRetry(dhcpRetries))
}

// unicastClient opens a client on a UDP socket bound to the leased
// address, to renew with the server by unicast (RFC 2131 4.4.5).
func (c *dhcpClient) unicastClient(le *lease) (*nclient4.Client, error) {
	var conn net.PacketConn
	err := c.m.inNS(func() (err error) {
		lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
					return
				}
				serr = unix.BindToDevice(int(fd), c.name)
			})
			return errors.Join(err, serr)
		}}
		conn, err = lc.ListenPacket(context.Background(), "udp4", net.JoinHostPort(le.addr.IP.String(), "68"))
		return err
	})
	if err != nil {
		return nil, err
	}
	return nclient4.NewWithConn(conn, c.mac,
		nclient4.WithServerAddr(&net.UDPAddr{IP: le.server, Port: nclient4.ServerPort}),
		nclient4.WithTimeout(dhcpTimeout), nclient4.WithRetry(1))
}

// discover runs DISCOVER/OFFER/REQUEST/ACK until a lease is bound or
// ctx is done.
func (c *dhcpClient) discover(ctx context.Context) (*lease, error) {
	log := c.m.log.With("link", c.name)
	c.m.setState(c, stateDiscovering)
	backoff := time.Second
	for tries := 1; ; tries++ {
		cl, err := c.rawClient()
		if err == nil {
			var l *nclient4.Lease
			l, err = cl.Request(ctx, c.modifiers()...)
			cl.Close()
			if err == nil {
				var le *lease
				if le, err = leaseFrom(l, time.Now()); err == nil {
					return le, nil
				}
			}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if tries == 1 {
			log.Warn("no DHCP lease yet, retrying", "err", err)
		} else {
			log.Debug("no DHCP lease yet, retrying", "tries", tries, "err", err)
		}
		if !sleep(ctx, backoff) {
			return nil, ctx.Err()
		}
		backoff = min(2*backoff, discoverBackoffMax)
	}
}

// keep holds le: it waits for T1, renews with the server until T2,
// rebinds with any server until the lease expires. It returns the
// extended lease, or why the lease ended.
func (c *dhcpClient) keep(ctx context.Context, le *lease) (*lease, error) {
	if le.infinite {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if !sleep(ctx, time.Until(le.t1)) {
		return nil, ctx.Err()
	}
	floor := min(time.Minute, le.expiry.Sub(le.obtained)/16)
	log := c.m.log.With("link", c.name)
	for _, phase := range []struct {
		state    string
		deadline time.Time
	}{{stateRenewing, le.t2}, {stateRebinding, le.expiry}} {
		c.m.setState(c, phase.state)
		for {
			left := time.Until(phase.deadline)
			if left <= 0 {
				break
			}
			next, err := c.extend(ctx, le, phase.state == stateRebinding, phase.deadline)
			if err == nil {
				return next, nil
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			var nak *nclient4.ErrNak
			if errors.As(err, &nak) {
				return nil, errNak
			}
			log.Debug("dhcp "+phase.state+" failed", "err", err)
			if !sleep(ctx, retryWait(time.Until(phase.deadline), floor)) {
				return nil, ctx.Err()
			}
		}
	}
	return nil, errExpired
}

// extend sends one REQUEST for le's address: unicast to le's server when
// renewing, broadcast to any server when rebinding.
func (c *dhcpClient) extend(ctx context.Context, le *lease, rebind bool, deadline time.Time) (*lease, error) {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	var cl *nclient4.Client
	var err error
	if !rebind {
		cl, err = c.unicastClient(le)
	}
	if rebind || err != nil {
		cl, err = c.rawClient()
	}
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	req, err := dhcpv4.NewRenewFromAck(le.raw.ACK, c.modifiers()...)
	if err != nil {
		return nil, err
	}
	match := nclient4.IsMessageType(dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak)
	if !rebind {
		match = nclient4.IsAll(nclient4.IsCorrectServer(le.server), match)
	}
	dest := &net.UDPAddr{IP: net.IPv4bcast, Port: nclient4.ServerPort}
	if !rebind {
		dest = &net.UDPAddr{IP: le.server, Port: nclient4.ServerPort}
	}
	resp, err := cl.SendAndRead(ctx, dest, req, match)
	if err != nil {
		return nil, err
	}
	if resp.MessageType() == dhcpv4.MessageTypeNak {
		return nil, &nclient4.ErrNak{Offer: le.raw.Offer, Nak: resp}
	}
	return leaseFrom(&nclient4.Lease{Offer: le.raw.Offer, ACK: resp, CreationTime: time.Now()}, time.Now())
}

// linkFor returns c's link if c is still its current DHCP run.
func (m *Manager) linkFor(c *dhcpClient) *link {
	l := m.links[c.index]
	if l == nil || l.gen != c.gen {
		return nil
	}
	return l
}

func (m *Manager) setState(c *dhcpClient, state string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l := m.linkFor(c); l != nil {
		l.dhcpState = state
	}
}

// bind applies le to c's link; it reports false when c is no longer the
// link's DHCP run.
func (m *Manager) bind(c *dhcpClient, le *lease) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.linkFor(c)
	if l == nil {
		return false
	}
	old := l.lease
	if old != nil && !old.addr.IP.Equal(le.addr.IP) {
		m.removeLeaseLocked(l, "address changed")
		old = nil
	}
	nl, err := m.nl.LinkByIndex(l.index)
	if err != nil {
		m.log.Warn("link vanished", "link", l.name, "err", err)
		return false
	}
	a := &netlink.Addr{IPNet: le.addr}
	if !le.infinite {
		// The kernel removes the address itself when the lease runs out,
		// also if the agent is not running then.
		secs := int(time.Until(le.expiry).Seconds() + 1)
		a.ValidLft, a.PreferedLft = secs, secs
	}
	if err := m.nl.AddrReplace(nl, a); err != nil {
		m.log.Warn("cannot add leased address", "link", l.name, "address", le.addr.String(), "err", err)
	}
	le.applied = m.leaseRoutes(l, le)
	for i := range le.applied {
		if err := m.nl.RouteReplace(&le.applied[i]); err != nil {
			m.log.Warn("cannot add route from lease", "link", l.name, "route", le.applied[i].String(), "err", err)
		}
	}
	if old != nil {
		for _, r := range old.applied {
			if !routeIn(le.applied, r) {
				_ = m.nl.RouteDel(&r)
			}
		}
	}
	l.lease = le
	l.dhcpState = stateBound
	m.writeResolvLocked()
	attrs := []any{"link", l.name, "address", le.addr.String(), "server", le.server.String(), "dns", ipStrings(le.dns)}
	if len(le.routers) > 0 {
		attrs = append(attrs, "gateway", le.routers[0].String())
	}
	if !le.infinite {
		attrs = append(attrs, "expires", le.expiry.Format(time.RFC3339))
	}
	if old == nil {
		m.log.Info("dhcp lease bound", attrs...)
	} else {
		m.log.Debug("dhcp lease extended", attrs...)
	}
	return true
}

// leaseRoutes are the routes le asks for on l: its classless static
// routes, or else a default route through its first router.
func (m *Manager) leaseRoutes(l *link, le *lease) []netlink.Route {
	base := netlink.Route{LinkIndex: l.index, Protocol: unix.RTPROT_DHCP, Priority: dhcpMetric + l.index, Src: le.addr.IP}
	var rs []netlink.Route
	if len(le.routes) > 0 {
		for _, r := range le.routes {
			if r.Dest == nil {
				continue
			}
			rt := base
			rt.Dst = r.Dest
			if ones, _ := r.Dest.Mask.Size(); ones == 0 {
				rt.Dst = nil
			}
			if r.Router != nil && !r.Router.IsUnspecified() {
				rt.Gw = r.Router
				if !le.addr.Contains(r.Router) {
					rt.Flags = int(netlink.FLAG_ONLINK)
				}
			} else {
				rt.Scope = netlink.SCOPE_LINK
			}
			rs = append(rs, rt)
		}
		return rs
	}
	if len(le.routers) > 0 {
		rt := base
		rt.Gw = le.routers[0]
		if !le.addr.Contains(rt.Gw) {
			// Some networks (clouds, /32 leases) hand out a router outside
			// the leased subnet; it is still on the link.
			rt.Flags = int(netlink.FLAG_ONLINK)
		}
		rs = append(rs, rt)
	}
	return rs
}

func routeIn(rs []netlink.Route, r netlink.Route) bool {
	for _, x := range rs {
		if x.Dst.String() == r.Dst.String() && x.Gw.Equal(r.Gw) && x.Priority == r.Priority {
			return true
		}
	}
	return false
}

// drop removes c's lease after it ended (NAK, expiry).
func (m *Manager) drop(c *dhcpClient, reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l := m.linkFor(c); l != nil && l.lease != nil {
		m.removeLeaseLocked(l, reason)
		l.dhcpState = stateDiscovering
	}
}

func (m *Manager) removeLeaseLocked(l *link, reason string) {
	le := l.lease
	l.lease = nil
	for i := range le.applied {
		if err := ignoreGone(m.nl.RouteDel(&le.applied[i])); err != nil {
			m.log.Debug("cannot remove route", "link", l.name, "err", err)
		}
	}
	nl, err := m.nl.LinkByIndex(l.index)
	if err == nil {
		err = m.nl.AddrDel(nl, &netlink.Addr{IPNet: le.addr})
	}
	if err := ignoreGone(err); err != nil {
		m.log.Warn("cannot remove leased address", "link", l.name, "address", le.addr.String(), "err", err)
	}
	m.writeResolvLocked()
	m.log.Info("dhcp lease dropped", "link", l.name, "address", le.addr.String(), "reason", reason)
}
