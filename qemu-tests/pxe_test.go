package qemutests

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/agent/netnstest"
	"github.com/cairn-edge/cairn/qemu-tests/qemu"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// siteLAN is a site's network in network namespaces of its own: a bridge
// (in lan) joins the site's DHCP server (in site, at siteDHCPAddr), the
// boot server (in boot, at bootServerAddr) and the guests' tap devices.
type siteLAN struct {
	lan, site, boot netns.NsHandle
}

const (
	siteDHCPAddr   = "10.79.0.2"
	bootServerAddr = "10.79.0.3"
	siteRange      = "10.79.0.100,10.79.0.150,255.255.255.0,1h"
)

// newSiteLAN makes the namespaces, links and bridge.
func newSiteLAN(t testing.TB) *siteLAN {
	t.Helper()
	netnstest.NeedRoot(t)
	nss := netnstest.New(t, 3)
	l := &siteLAN{lan: nss[0], site: nss[1], boot: nss[2]}
	netnstest.Veth(t, l.lan, "site0", "", l.site, "eth0", siteDHCPAddr+"/24")
	netnstest.Veth(t, l.lan, "boot0", "", l.boot, "eth0", bootServerAddr+"/24")
	h := l.handle(t)
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}
	if err := h.LinkAdd(br); err != nil {
		t.Fatalf("creating the bridge: %v", err)
	}
	for _, port := range []string{"site0", "boot0"} {
		l.join(t, h, port)
	}
	if err := h.LinkSetUp(br); err != nil {
		t.Fatal(err)
	}
	return l
}

func (l *siteLAN) handle(t testing.TB) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandleAt(l.lan)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// join puts the lan's link name on the bridge.
func (l *siteLAN) join(t testing.TB, h *netlink.Handle, name string) {
	t.Helper()
	link, err := h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	br, err := h.LinkByName("br0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetMaster(link, br); err != nil {
		t.Fatalf("%s onto the bridge: %v", name, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		t.Fatal(err)
	}
}

// tap makes a tap device on the bridge, for a guest.
func (l *siteLAN) tap(t testing.TB, name string) {
	t.Helper()
	var err error
	netnstest.In(t, l.lan, func() { // a tap is made through /dev/net/tun, in the thread's namespace
		err = netlink.LinkAdd(&netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: name}, Mode: netlink.TUNTAP_MODE_TAP, Flags: netlink.TUNTAP_NO_PI})
	})
	if err != nil {
		t.Fatalf("creating tap %s: %v", name, err)
	}
	l.join(t, l.handle(t), name)
}

// start runs a program in ns until the test ends, its output in out.
func start(t testing.TB, ns netns.NsHandle, out *qemu.LockedBuffer, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = out, out
	var err error
	netnstest.Thread(t, ns)(func() { err = cmd.Start() }) // the child is born in ns
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s's output:\n%s", filepath.Base(name), out.String())
		}
	})
}

// netBoot is a PC network-booted on a site's network (netBootPC): its
// guest, its MAC, and the logs of the site's DHCP server and cairn serve.
type netBoot struct {
	vm                *qemu.VM
	mac               string
	dhcpLog, serveLog *qemu.LockedBuffer
}

// pxeBundle builds images/minimal.yaml's PXE bundle for qemu-x86_64 (with loop) into dir.
func pxeBundle(tb testing.TB, dir string) string {
	tb.Helper()
	if _, err := exec.LookPath("dnsmasq"); err != nil {
		tb.Skip("no dnsmasq (apt-get install dnsmasq-base; make deps does)")
	}
	e := *env
	e.Format, e.Node = "pxe", ""
	// qemu-x86_64 with loop among its bootModules. Not on qemu-x86_64
	// itself yet: its larger initramfs gives TestUpgrade's artifact a
	// chunk layout whose cut download does not resume (a bug open in
	// agent/update).
	board := filepath.Join(env.Root, "qemu-tests", "testdata", "qemu-x86_64-netboot.yaml")
	res, err := e.Build(filepath.Join(env.Root, "images", "minimal.yaml"), board, dir)
	if err != nil {
		tb.Fatal(err)
	}
	return res.Image
}

// netBootPC makes a site's network with a real dnsmasq handing out
// addresses only, runs cairn serve there with its proxy DHCP server for
// bundle, and starts a PC (q35, SeaBIOS, QEMU's virtio-net with its iPXE
// option ROM) that boots from the network.
func netBootPC(tb testing.TB, bundle string) *netBoot {
	tb.Helper()
	cli, err := env.CLI()
	if err != nil {
		tb.Fatal(err)
	}
	lan := newSiteLAN(tb)
	n := &netBoot{mac: "52:54:00:c4:19:01", dhcpLog: &qemu.LockedBuffer{}, serveLog: &qemu.LockedBuffer{}}
	start(tb, lan.site, n.dhcpLog, "dnsmasq", "--keep-in-foreground", "--log-facility=-", "--log-dhcp", "--conf-file=/dev/null",
		"--port=0", "--interface=eth0", "--bind-interfaces", "--dhcp-range="+siteRange,
		"--dhcp-leasefile="+filepath.Join(tb.TempDir(), "leases"), "--pid-file=", "--user=root")
	start(tb, lan.boot, n.serveLog, cli, "serve", "--interface", "eth0", "--http", bootServerAddr+":8080", bundle)
	lan.tap(tb, "tap0")
	netnstest.Thread(tb, lan.lan)(func() { // QEMU dies with the thread that started it
		n.vm = qemu.StartT(tb, qemu.WithArch(qemu.AMD64), qemu.WithoutUEFI(), qemu.WithMemory(768), qemu.WithNetBoot("tap0", n.mac))
	})
	if n.vm == nil {
		tb.FailNow()
	}
	return n
}

// served checks that cairn serve answered the PC's iPXE and served it the
// bundle, and returns the bytes it served and how long the slot took.
func (n *netBoot) served(tb testing.TB) (bytes int64, slot time.Duration) {
	tb.Helper()
	log := n.serveLog.String()
	if !regexp.MustCompile(`boot client mac=` + n.mac + ` arch=amd64 firmware=ipxe port=\d+ file=http://` + bootServerAddr + `:8080/ipxe/amd64`).MatchString(log) {
		tb.Errorf("cairn serve did not answer the PC's iPXE:\n%s", log)
	}
	for _, file := range []string{"/ipxe/amd64", "/amd64/vmlinuz", "/amd64/initramfs", "/amd64/slot.cpio"} {
		m := regexp.MustCompile(`path=` + file + ` status=200 bytes=(\d+) took=(\S+)`).FindStringSubmatch(log)
		if m == nil {
			tb.Errorf("cairn serve did not serve %s:\n%s", file, log)
			continue
		}
		b, _ := strconv.ParseInt(m[1], 10, 64)
		bytes += b
		if file == "/amd64/slot.cpio" {
			slot, _ = time.ParseDuration(m[2])
		}
	}
	return bytes, slot
}

// TestPXE network-boots a PC on a site whose DHCP server (a real dnsmasq,
// handing out addresses only) Cairn does not control: cairn serve, with
// its proxy DHCP server next to it, tells the PC's iPXE to fetch its boot
// script over HTTP, which loads the bundle's kernel, initramfs and slot;
// the node runs from RAM to its agent, with an address from the site's
// server.
func TestPXE(t *testing.T) {
	share(t, 1)
	n := netBootPC(t, pxeBundle(t, t.TempDir()))
	if _, err := n.vm.Expect(bootTimeout, `cairn: network boot: the slot runs from RAM and /var is a tmpfs`); err != nil {
		t.Fatal(err)
	}
	m, err := n.vm.Expect(time.Minute, `cairn: init ok slot=a version=0\.1\.0`)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("network boot: init ok %s after QEMU start", m.At.Round(time.Second))
	if _, err := n.vm.Expect(time.Minute, `cairn: agent ready`); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(n.vm.Console(), "data not persistent") {
		t.Error("a network boot warns of a tmpfs /var it chose")
	}
	// The node's own lease, from the site's server: a transaction that is
	// not iPXE's.
	waitFor(t, "the node's lease from the site's DHCP server", time.Minute, func() (bool, string) {
		return nodeLeased(n.dhcpLog.String(), n.mac), n.dhcpLog.String()
	})
	bytes, _ := n.served(t)
	t.Logf("bytes served for one boot: %d (%.1f MiB)", bytes, float64(bytes)/(1<<20))
}

// BenchmarkPXEBoot is the network boot's figures (make bench): the time
// from QEMU's start to init ok and to the agent, the bytes served and how
// long the slot took over HTTP, for a PC booting images/minimal.yaml's
// bundle through iPXE under TCG. Each boot is a site network of its own.
func BenchmarkPXEBoot(b *testing.B) {
	bundle := pxeBundle(b, b.TempDir())
	var initOK, ready, slot time.Duration
	var bytes int64
	for b.Loop() {
		n := netBootPC(b, bundle)
		m, err := n.vm.Expect(bootTimeout, `cairn: init ok slot=a`)
		if err != nil {
			b.Fatal(err)
		}
		r, err := n.vm.Expect(time.Minute, `cairn: agent ready`)
		if err != nil {
			b.Fatal(err)
		}
		bs, s := n.served(b)
		initOK, ready, slot, bytes = initOK+m.At, ready+r.At, slot+s, bytes+bs
		n.vm.Kill()
	}
	per := float64(b.N)
	b.ReportMetric(initOK.Seconds()/per, "s-init-ok")
	b.ReportMetric(ready.Seconds()/per, "s-agent-ready")
	b.ReportMetric(slot.Seconds()/per, "s-slot-http")
	b.ReportMetric(float64(bytes)/per/(1<<20), "MiB-served")
	b.ReportMetric(0, "ns/op")
}

// nodeLeased says whether dnsmasq's log (--log-dhcp) acknowledged a lease
// to mac in a transaction whose client did not say it was PXE firmware:
// the booted node's.
func nodeLeased(log, mac string) bool {
	pxe := map[string]bool{}
	line := regexp.MustCompile(`dnsmasq-dhcp\[\d+\]: (\d+) (.*)`)
	for _, m := range line.FindAllStringSubmatch(log, -1) {
		xid, text := m[1], m[2]
		switch {
		case strings.HasPrefix(text, "vendor class: PXEClient"):
			pxe[xid] = true
		case strings.HasPrefix(text, "DHCPACK(") && strings.Contains(text, " "+mac) && !pxe[xid]:
			return true
		}
	}
	return false
}
