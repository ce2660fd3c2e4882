// Package network configures the node's network: loopback, hostname,
// static addresses and routes, DHCPv4 with lease renewal, and
// resolv.conf, following links as they appear and gain or lose carrier.
//
//	cfg, err := network.ApplyNodeFile(imageCfg, network.NodeFile, log)
//	if err != nil {
//		fmt.Printf("cairn: warning: %v\n", err) // cfg is imageCfg then
//	}
//	m, err := network.New(cfg, network.WithLogger(log))
//	go m.Run(ctx)
//	st := m.Status() // for the API
//
// The Manager talks to the kernel through netlink only (no ip, no
// dhclient) and opens AF_PACKET sockets for DHCP discovery.
package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/cairn-edge/cairn/agent/config"
	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ResolvConf is where the Manager writes the resolver configuration by
// default; the image's /etc/resolv.conf is a symbolic link to it.
const ResolvConf = contract.ResolvConf

// Metrics of the default routes the Manager installs: base plus the link
// index, so two links each get a default route (the kernel keys routes by
// destination and metric) and the order is stable.
const (
	staticMetric = 100
	dhcpMetric   = 1024
)

// sethostname is the seam for the hostname syscall.
var sethostname = func(name string) error { return unix.Sethostname([]byte(name)) }

// Manager runs the network configuration. Create it with New, run it
// with Run, read it with Status.
type Manager struct {
	cfg        config.Network
	log        *slog.Logger
	resolvPath string
	// ns is the network namespace the Manager configures; netns.None()
	// means the caller's. Tests set it to run inside a namespace.
	ns netns.NsHandle

	wg sync.WaitGroup

	mu         sync.Mutex
	nl         *netlink.Handle
	links      map[int]*link
	resolvText string
	resolvDNS  []string
}

// link is the Manager's state of one configured link.
type link struct {
	index   int
	name    string
	mac     net.HardwareAddr
	conf    config.Interface
	up      bool
	carrier bool
	mtu     int

	// gen counts DHCP client runs; a run's results are applied only while
	// gen is still its own, so a client stopped on carrier loss cannot
	// re-add an address after the loss was handled.
	gen        int
	dhcpCancel context.CancelFunc
	dhcpState  string
	lease      *lease
}

// Option configures a Manager.
type Option func(*Manager)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(m *Manager) { m.log = l } }

// WithResolvConf sets the file the Manager writes the resolver
// configuration to (default ResolvConf). Its directory is created.
func WithResolvConf(path string) Option { return func(m *Manager) { m.resolvPath = path } }

// New validates cfg and returns a Manager for it.
func New(cfg config.Network, opts ...Option) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("network configuration: %w", err)
	}
	m := &Manager{
		cfg:        cfg,
		log:        slog.Default(),
		resolvPath: ResolvConf,
		ns:         netns.None(),
		links:      map[int]*link{},
	}
	for _, o := range opts {
		o(m)
	}
	m.log = m.log.With("component", "network")
	return m, nil
}

// Run configures the network and keeps it configured until ctx is done:
// loopback up, hostname set, resolv.conf written, then every link as the
// kernel reports it (at start and whenever links change). Addresses stay
// in place when Run returns, so the node keeps its address through an
// agent restart. Run returns an error only when it cannot start.
func (m *Manager) Run(ctx context.Context) error {
	h, err := m.handle()
	if err != nil {
		return fmt.Errorf("network: netlink: %w", err)
	}
	m.mu.Lock()
	m.nl = h
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		for _, l := range m.links {
			if l.dhcpCancel != nil {
				l.dhcpCancel() // the lease stays applied, see above
				l.dhcpCancel = nil
				l.gen++
			}
		}
		m.mu.Unlock()
		m.wg.Wait()
		h.Close()
	}()

	if lo, err := h.LinkByName("lo"); err != nil {
		m.log.Warn("no loopback link", "err", err)
	} else if err := h.LinkSetUp(lo); err != nil {
		m.log.Warn("cannot set loopback up", "err", err)
	}
	if m.cfg.Hostname != "" {
		if err := sethostname(m.cfg.Hostname); err != nil {
			m.log.Warn("cannot set hostname", "hostname", m.cfg.Hostname, "err", err)
		} else {
			m.log.Info("hostname set", "hostname", m.cfg.Hostname)
		}
	}
	m.mu.Lock()
	m.writeResolvLocked()
	m.mu.Unlock()

	backoff := 100 * time.Millisecond
	for {
		// The subscription closes its channel on any error (ENOBUFS after
		// a burst of changes): subscribe again; listing the existing links
		// makes the state converge whatever was missed.
		updates := make(chan netlink.LinkUpdate, 64)
		done := make(chan struct{})
		opts := netlink.LinkSubscribeOptions{
			ListExisting:  true,
			ErrorCallback: func(err error) { m.log.Debug("link subscription", "err", err) },
		}
		if m.ns != netns.None() {
			opts.Namespace = &m.ns
		}
		if err := netlink.LinkSubscribeWithOptions(updates, done, opts); err != nil {
			return fmt.Errorf("network: subscribing to link changes: %w", err)
		}
	recv:
		for {
			select {
			case <-ctx.Done():
				close(done)
				return nil
			case u, ok := <-updates:
				if !ok {
					break recv
				}
				m.handleUpdate(ctx, u)
				backoff = 100 * time.Millisecond
			}
		}
		close(done)
		m.log.Warn("link subscription lost, subscribing again")
		if !sleep(ctx, backoff) {
			return nil
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// handle opens a route netlink handle in the Manager's namespace. Only
// NETLINK_ROUTE: with no families named, netlink opens XFRM and netfilter
// sockets too, which fail with EPROTONOSUPPORT on a kernel whose xfrm_user
// and nfnetlink modules are not loaded (any Cairn node).
func (m *Manager) handle() (*netlink.Handle, error) {
	if m.ns == netns.None() {
		return netlink.NewHandle(unix.NETLINK_ROUTE)
	}
	return netlink.NewHandleAt(m.ns, unix.NETLINK_ROUTE)
}

// inNS runs f on a thread inside the Manager's namespace, for the
// sockets f opens (they stay in the namespace they were made in).
func (m *Manager) inNS(f func() error) error {
	if m.ns == netns.None() {
		return f()
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	if err := netns.Set(m.ns); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	ferr := f()
	if err := netns.Set(orig); err == nil {
		// Only a thread back in its namespace may run other goroutines; a
		// locked thread whose goroutine ends without unlocking is discarded.
		runtime.UnlockOSThread()
	}
	return ferr
}

// physicalEther reports whether l is what the default configuration
// covers: an ethernet device backed by hardware, not one of the virtual
// links (veth, bridge, vxlan) that containers and Kubernetes create.
func physicalEther(l netlink.Link) bool {
	return l.Type() == "device" && l.Attrs().EncapType == "ether"
}

func (m *Manager) handleUpdate(ctx context.Context, u netlink.LinkUpdate) {
	a := u.Link.Attrs()
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.links[a.Index]
	if u.Header.Type == unix.RTM_DELLINK {
		if l != nil {
			m.log.Info("link removed", "link", l.name)
			m.stopDHCPLocked(l)
			delete(m.links, a.Index)
		}
		return
	}
	if a.Name == "lo" || a.EncapType == "loopback" {
		return
	}
	if l == nil {
		conf, ok := m.cfg.InterfaceFor(a.Name, physicalEther(u.Link))
		if !ok {
			return
		}
		l = &link{index: a.Index, name: a.Name, conf: conf}
		m.links[a.Index] = l
		m.log.Info("configuring link", "link", a.Name, "mac", a.HardwareAddr.String(), "dhcp", conf.UsesDHCP(), "addresses", conf.Addresses)
		if conf.MTU != 0 && a.MTU != conf.MTU {
			if err := m.nl.LinkSetMTU(u.Link, conf.MTU); err != nil {
				m.log.Warn("cannot set MTU", "link", a.Name, "mtu", conf.MTU, "err", err)
			}
		}
		if a.Flags&net.FlagUp == 0 {
			if err := m.nl.LinkSetUp(u.Link); err != nil {
				m.log.Warn("cannot set link up", "link", a.Name, "err", err)
			}
		}
		m.applyStaticLocked(l)
	}
	l.name, l.mac, l.mtu = a.Name, a.HardwareAddr, a.MTU
	wasUp, hadCarrier := l.up, l.carrier
	l.up = a.Flags&net.FlagUp != 0
	l.carrier = hasCarrier(a)
	switch {
	case l.carrier && !hadCarrier:
		m.log.Info("link carrier up", "link", l.name)
		if !wasUp {
			// Setting a link down flushes its routes; put ours back.
			m.applyStaticLocked(l)
		}
		if l.conf.UsesDHCP() {
			m.startDHCPLocked(ctx, l)
		}
	case !l.carrier && hadCarrier:
		m.log.Info("link carrier down", "link", l.name)
		m.stopDHCPLocked(l)
	}
}

// hasCarrier reports whether a link can send: up, with carrier, and past
// the kernel's link watch, which activates the queueing discipline after
// the carrier comes (IFF_LOWER_UP is set before that, and packets sent
// in between are dropped). The operational state is set by the link watch;
// drivers that do not report one leave it "unknown".
func hasCarrier(a *netlink.LinkAttrs) bool {
	if a.Flags&net.FlagUp == 0 || a.RawFlags&unix.IFF_LOWER_UP == 0 {
		return false
	}
	return a.OperState == netlink.OperUp || a.OperState == netlink.OperUnknown
}

// applyStaticLocked adds the link's static addresses and default route;
// it is idempotent.
func (m *Manager) applyStaticLocked(l *link) {
	nl, err := m.nl.LinkByIndex(l.index)
	if err != nil {
		m.log.Warn("link vanished", "link", l.name, "err", err)
		return
	}
	for _, s := range l.conf.Addresses {
		a, err := netlink.ParseAddr(s)
		if err != nil {
			continue // Validate rejected it already
		}
		if err := m.nl.AddrReplace(nl, a); err != nil {
			m.log.Warn("cannot add address", "link", l.name, "address", s, "err", err)
		}
	}
	if l.conf.Gateway != "" {
		r := &netlink.Route{
			LinkIndex: l.index,
			Gw:        net.ParseIP(l.conf.Gateway),
			Priority:  staticMetric + l.index,
			Protocol:  unix.RTPROT_STATIC,
		}
		if err := m.nl.RouteReplace(r); err != nil {
			m.log.Warn("cannot add default route", "link", l.name, "gateway", l.conf.Gateway, "err", err)
		}
	}
}

// startDHCPLocked starts a DHCP client run on l.
func (m *Manager) startDHCPLocked(ctx context.Context, l *link) {
	if l.dhcpCancel != nil {
		return
	}
	l.gen++
	cctx, cancel := context.WithCancel(ctx)
	l.dhcpCancel = cancel
	l.dhcpState = stateDiscovering
	c := &dhcpClient{m: m, index: l.index, name: l.name, mac: l.mac, gen: l.gen}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		c.run(cctx)
	}()
}

// stopDHCPLocked stops l's DHCP client and drops its lease: the address,
// its routes and DNS servers go, because after a carrier loss the link may
// be plugged into another network.
func (m *Manager) stopDHCPLocked(l *link) {
	if l.dhcpCancel == nil {
		return
	}
	l.dhcpCancel()
	l.dhcpCancel = nil
	l.gen++
	l.dhcpState = ""
	if l.lease != nil {
		m.removeLeaseLocked(l, "link down")
	}
}

// Status is the network state for the node API.
type Status struct {
	Hostname string `json:"hostname"`
	// DNS lists the name servers in resolv.conf.
	DNS   []string     `json:"dns"`
	Links []LinkStatus `json:"links"`
}

// LinkStatus is one configured link.
type LinkStatus struct {
	Name    string `json:"name"`
	MAC     string `json:"mac"`
	Up      bool   `json:"up"`
	Carrier bool   `json:"carrier"`
	MTU     int    `json:"mtu"`
	// Addresses are every address on the link, in CIDR form, as the
	// kernel reports them.
	Addresses []string `json:"addresses"`
	Gateway   string   `json:"gateway,omitempty"`
	DNS       []string `json:"dns,omitempty"`
	// DHCP is nil for links without a DHCP client.
	DHCP *LeaseStatus `json:"dhcp,omitempty"`
}

// LeaseStatus is a link's DHCP client state.
type LeaseStatus struct {
	// State is "discovering", "bound", "renewing" or "rebinding".
	State    string    `json:"state"`
	Address  string    `json:"address,omitempty"`
	Server   string    `json:"server,omitempty"`
	Obtained time.Time `json:"obtained,omitzero"`
	Renew    time.Time `json:"renew,omitzero"`
	Rebind   time.Time `json:"rebind,omitzero"`
	Expiry   time.Time `json:"expiry,omitzero"`
	// NTP servers offered by the DHCP server (option 42).
	NTP []string `json:"ntp,omitempty"`
}

// Status returns the current state of every configured link, sorted by
// name. It is safe to call at any time, also before and after Run.
func (m *Manager) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := Status{Hostname: m.cfg.Hostname, DNS: slices.Clone(m.resolvDNS)}
	if st.Hostname == "" {
		st.Hostname, _ = os.Hostname()
	}
	for _, l := range m.links {
		ls := LinkStatus{Name: l.name, MAC: l.mac.String(), Up: l.up, Carrier: l.carrier, MTU: l.mtu, Gateway: l.conf.Gateway}
		if m.nl != nil {
			if addrs, err := m.nl.AddrList(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: l.index}}, netlink.FAMILY_ALL); err == nil {
				for _, a := range addrs {
					ls.Addresses = append(ls.Addresses, a.IPNet.String())
				}
			}
		}
		ls.DNS = slices.Clone(m.cfg.DNS)
		if l.conf.UsesDHCP() {
			ds := &LeaseStatus{State: l.dhcpState}
			if le := l.lease; le != nil {
				ds.Address, ds.Server = le.addr.String(), le.server.String()
				ds.Obtained, ds.Renew, ds.Rebind, ds.Expiry = le.obtained, le.t1, le.t2, le.expiry
				ds.NTP = ipStrings(le.ntp)
				if ls.Gateway == "" && len(le.routers) > 0 {
					ls.Gateway = le.routers[0].String()
				}
				ls.DNS = append(ls.DNS, ipStrings(le.dns)...)
			}
			ls.DHCP = ds
		}
		st.Links = append(st.Links, ls)
	}
	slices.SortFunc(st.Links, func(a, b LinkStatus) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return st
}

func ipStrings(ips []net.IP) []string {
	var s []string
	for _, ip := range ips {
		s = append(s, ip.String())
	}
	return s
}

// sleep waits d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// ignoreGone drops the errors of deleting what is already gone (the
// kernel expires DHCP addresses itself at the end of their lifetime).
func ignoreGone(err error) error {
	if errors.Is(err, unix.ESRCH) || errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}
