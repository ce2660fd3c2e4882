package network

import (
	"errors"
	"net"
	"runtime"
	"testing"

	"github.com/cairn-edge/cairn/agent/netnstest"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

func TestEnsureClusterLink(t *testing.T) {
	netnstest.NeedRoot(t)
	runtime.LockOSThread()
	orig, _ := netns.Get()
	ns, err := netns.New() // switches this thread; switch it back
	netns.Set(orig)
	orig.Close()
	runtime.UnlockOSThread()
	if err != nil {
		t.Skipf("no network namespaces here: %v", err)
	}
	defer ns.Close()
	var err1, err2 error
	netnstest.In(t, ns, func() { err1, err2 = EnsureClusterLink(), EnsureClusterLink() }) // the second finds it all in place
	if errors.Is(err1, unix.EOPNOTSUPP) {
		t.Skipf("this kernel makes no dummy links (module dummy not loaded): %v", err1)
	}
	if err1 != nil || err2 != nil {
		t.Fatalf("EnsureClusterLink: %v, again: %v", err1, err2)
	}
	netnstest.In(t, ns, func() {
		link, err := netlink.LinkByName(ClusterLink)
		if err != nil {
			t.Error(err)
			return
		}
		if link.Attrs().Flags&net.FlagUp == 0 {
			t.Error("link is down")
		}
		addrs, _ := netlink.AddrList(link, netlink.FAMILY_V4)
		if len(addrs) != 1 || addrs[0].IPNet.String() != ClusterAddress.String() {
			t.Errorf("addresses = %v, want %s", addrs, ClusterAddress)
		}
		routes, _ := netlink.RouteList(link, netlink.FAMILY_V4)
		found := false
		for _, r := range routes {
			found = found || (r.Dst == nil || r.Dst.String() == "0.0.0.0/0") && r.Priority == fallbackMetric
		}
		if !found {
			t.Errorf("no fallback default route in %v", routes)
		}
	})
}
