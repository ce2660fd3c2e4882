// Package netnstest gives tests fresh network namespaces, for code that
// configures links, addresses or nftables without touching the host's:
//
//	netnstest.NeedRoot(t)
//	nss := netnstest.New(t, 2) // closed, and so gone, when the test ends
//	netnstest.In(t, nss[0], func() { … net.Listen, exec nft … })
//
// The namespaces are anonymous: nothing is left behind in /run/netns when
// a test dies.
package netnstest

import (
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// NeedRoot skips the test unless it runs as root.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root for network namespaces (run the tests as root, as CI does)")
	}
}

// New makes n fresh network namespaces, each with only a loopback link
// (down), and closes their handles when the test ends.
func New(t testing.TB, n int) []netns.NsHandle {
	t.Helper()
	var nss []netns.NsHandle
	done := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread is in a test namespace
		for range n {
			ns, err := netns.New()
			if err != nil {
				done <- err
				return
			}
			nss = append(nss, ns)
		}
		done <- nil
	}()
	err := <-done
	t.Cleanup(func() {
		for _, ns := range nss {
			ns.Close()
		}
	})
	if err != nil {
		t.Fatalf("creating network namespaces: %v", err)
	}
	return nss
}

// In runs f on a thread inside ns; sockets f opens and processes it starts
// belong to ns.
func In(t testing.TB, ns netns.NsHandle, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := netns.Set(ns); err != nil {
			t.Errorf("netns.Set: %v", err)
			return
		}
		f()
	}()
	<-done
}

// Pair makes two fresh namespaces joined by a veth pair, the link aName
// in the first and bName in the second, each up with its address (CIDR;
// "" for none) and with its loopback up.
func Pair(t testing.TB, aName, aAddr, bName, bAddr string) (a, b netns.NsHandle) {
	t.Helper()
	nss := New(t, 2)
	Veth(t, nss[0], aName, aAddr, nss[1], bName, bAddr)
	return nss[0], nss[1]
}

// Veth joins the namespaces a and b by a veth pair, the link aName in a
// and bName in b, each up with its address (CIDR; "" for none) and with
// its namespace's loopback up.
func Veth(t testing.TB, a netns.NsHandle, aName, aAddr string, b netns.NsHandle, bName, bAddr string) {
	t.Helper()
	aH, err := netlink.NewHandleAt(a)
	if err != nil {
		t.Fatal(err)
	}
	defer aH.Close()
	bH, err := netlink.NewHandleAt(b)
	if err != nil {
		t.Fatal(err)
	}
	defer bH.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: aName}, PeerName: bName, PeerNamespace: netlink.NsFd(b)}
	if err := aH.LinkAdd(veth); err != nil {
		t.Fatalf("creating veth pair %s-%s: %v", aName, bName, err)
	}
	for _, side := range []struct {
		h          *netlink.Handle
		link, addr string
	}{{aH, aName, aAddr}, {bH, bName, bAddr}} {
		for _, name := range []string{side.link, "lo"} {
			l, err := side.h.LinkByName(name)
			if err != nil {
				t.Fatal(err)
			}
			if name == side.link && side.addr != "" {
				addr, err := netlink.ParseAddr(side.addr)
				if err != nil {
					t.Fatal(err)
				}
				if err := side.h.AddrAdd(l, addr); err != nil {
					t.Fatal(err)
				}
			}
			if err := side.h.LinkSetUp(l); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// Thread keeps a thread in ns until the test ends and returns how to run
// a function on it. Unlike In's, its thread outlives the call: a process
// started from it lives in ns and, if it is to die with the thread that
// started it (Pdeathsig, as QEMU under qemu-tests), lives until the test
// ends.
func Thread(t testing.TB, ns netns.NsHandle) (do func(f func())) {
	t.Helper()
	work := make(chan func())
	done := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread is in a test namespace
		err := netns.Set(ns)
		for f := range work {
			if err == nil {
				f()
			}
			done <- err
		}
	}()
	t.Cleanup(func() { close(work) }) // after the cleanups of what it started
	return func(f func()) {
		t.Helper()
		work <- f
		if err := <-done; err != nil {
			t.Fatalf("netns.Set: %v", err)
		}
	}
}
