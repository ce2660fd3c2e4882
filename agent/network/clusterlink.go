package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ClusterLink is the dummy link that holds a Kubernetes node's own address:
// an address that exists with no network at all and never changes when
// DHCP does, so the cluster's certificates and node object stay valid.
const ClusterLink = "cairn0"

// ClusterAddress is the address on ClusterLink, the node's Kubernetes
// node IP (a /32 outside the default pod and service networks).
var ClusterAddress = netip.MustParsePrefix("10.254.0.1/32")

// fallbackMetric makes ClusterLink's default route lose to any real one:
// it only serves a node with no network, so that traffic to Service
// addresses has a route to be translated on.
const fallbackMetric = 4096

// EnsureClusterLink creates ClusterLink (the dummy module must be loaded)
// with ClusterAddress and a fallback default route, and brings it up.
// Calling it again is harmless.
func EnsureClusterLink() error {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer h.Close()
	link, err := h.LinkByName(ClusterLink)
	if err != nil {
		if err := h.LinkAdd(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: ClusterLink}}); err != nil {
			return fmt.Errorf("create %s: %w (is the dummy kernel module in the board's modules?)", ClusterLink, err)
		}
		if link, err = h.LinkByName(ClusterLink); err != nil {
			return err
		}
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: ClusterAddress.Addr().AsSlice(), Mask: net.CIDRMask(ClusterAddress.Bits(), 32)}}
	if err := h.AddrReplace(link, addr); err != nil {
		return fmt.Errorf("address %s on %s: %w", ClusterAddress, ClusterLink, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("bring %s up: %w", ClusterLink, err)
	}
	route := &netlink.Route{LinkIndex: link.Attrs().Index, Scope: netlink.SCOPE_LINK, Priority: fallbackMetric,
		Dst: &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}}
	if err := h.RouteAdd(route); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("fallback route on %s: %w", ClusterLink, err)
	}
	return nil
}
