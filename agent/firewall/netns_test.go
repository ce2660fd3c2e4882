package firewall

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/agent/config"
	"github.com/cairn-edge/cairn/agent/netnstest"
	"github.com/vishvananda/netns"
)

// The node's and the prober's addresses on the veth pair.
const (
	nodeAddr  = "10.78.0.1"
	probeAddr = "10.78.0.2"
)

// How long a probe waits before it calls a port dropped: short where the
// port should be dropped (the veth answers in microseconds, an admitted
// port connects long before), longer where it should connect, so that a
// busy machine does not fail the test.
const (
	dropWait  = 300 * time.Millisecond
	admitWait = 3 * time.Second
)

// needNft skips the test unless it can create network namespaces and run
// the real nft.
func needNft(t *testing.T) {
	t.Helper()
	netnstest.NeedRoot(t)
	if _, err := exec.LookPath(NftPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing: CI needs it (make deps installs nftables)", NftPath)
		}
		t.Skipf("skipping: %s is missing (apt-get install nftables)", NftPath)
	}
}

// newNodeNet makes two fresh network namespaces joined by a veth pair:
// the node (nodeAddr) and the prober (probeAddr). They vanish when their
// handles close at the test's end.
func newNodeNet(t *testing.T) (node, probe netns.NsHandle) {
	t.Helper()
	return netnstest.Pair(t, "node0", nodeAddr+"/24", "probe0", probeAddr+"/24")
}

// listen starts a TCP listener on every port and a UDP echo on every UDP
// port, inside ns, on all of its addresses.
func listen(t *testing.T, ns netns.NsHandle, tcp, udp []int) {
	t.Helper()
	netnstest.In(t, ns, func() {
		for _, port := range tcp {
			ln, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
			if err != nil {
				t.Fatalf("listen tcp %d: %v", port, err)
			}
			t.Cleanup(func() { ln.Close() })
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
		}
		for _, port := range udp {
			pc, err := net.ListenPacket("udp", fmt.Sprintf(":%d", port))
			if err != nil {
				t.Fatalf("listen udp %d: %v", port, err)
			}
			t.Cleanup(func() { pc.Close() })
			go func() {
				buf := make([]byte, 64)
				for {
					n, from, err := pc.ReadFrom(buf)
					if err != nil {
						return
					}
					pc.WriteTo(buf[:n], from)
				}
			}()
		}
	})
}

// probe reports whether a TCP connection (or a UDP echo) to addr:port
// from inside ns succeeds within wait.
func probe(t *testing.T, ns netns.NsHandle, proto, addr string, port int, wait time.Duration) (ok bool) {
	t.Helper()
	netnstest.In(t, ns, func() {
		c, err := net.DialTimeout(proto, net.JoinHostPort(addr, fmt.Sprint(port)), wait)
		if err != nil {
			return
		}
		defer c.Close()
		if proto == "tcp" {
			ok = true
			return
		}
		c.SetDeadline(time.Now().Add(wait))
		if _, err := c.Write([]byte("ping")); err != nil {
			return
		}
		buf := make([]byte, 8)
		n, err := c.Read(buf)
		ok = err == nil && string(buf[:n]) == "ping"
	})
	return ok
}

// TestNamespaceProbe applies rendered policies with the real nft inside a
// network namespace and probes the node's ports from another one: what
// the policy admits connects, every other port probed is dropped.
func TestNamespaceProbe(t *testing.T) {
	needNft(t)
	node, prober := newNodeNet(t)
	tcpPorts := []int{22, 7443, 6443, 10250, 8080, 8081, 9090, 9100, 30080}
	udpPorts := []int{5353, 5354}
	listen(t, node, tcpPorts, udpPorts)

	// The veth's carrier comes up a moment after the links: wait for it.
	for deadline := time.Now().Add(5 * time.Second); !probe(t, prober, "tcp", nodeAddr, tcpPorts[0], dropWait); {
		if time.Now().After(deadline) {
			t.Fatalf("tcp %d does not answer 5 s after the links came up: the test network is broken", tcpPorts[0])
		}
	}
	// Without a policy everything answers: drops below are the policy's.
	for _, port := range tcpPorts {
		if !probe(t, prober, "tcp", nodeAddr, port, admitWait) {
			t.Fatalf("tcp %d does not answer before any policy: the test network is broken", port)
		}
	}

	allow := []config.FirewallAllow{
		{Port: 8080, From: "10.78.0.0/24"}, // the prober's network
		{Port: 8081, From: "10.99.0.0/16"}, // not the prober's
		{Port: 5353, Proto: "udp"},
	}
	for _, tt := range []struct {
		name  string
		p     Policy
		admit map[string]bool // "tcp/7443" → connects
	}{
		{
			name:  "server",
			p:     PolicyFor(config.Config{Kubernetes: &config.Kubernetes{}, Firewall: config.Firewall{Allow: allow}}, 7443),
			admit: map[string]bool{"tcp/7443": true, "tcp/6443": true, "tcp/30080": true, "tcp/8080": true, "udp/5353": true},
		},
		{
			name:  "agent",
			p:     PolicyFor(config.Config{Kubernetes: &config.Kubernetes{Mode: config.ModeAgent, Server: "https://10.78.0.9:6443"}}, 7443),
			admit: map[string]bool{"tcp/7443": true, "tcp/10250": true, "tcp/30080": true},
		},
		{
			name:  "plain metrics on the prober's link",
			p:     PolicyFor(config.Config{API: config.API{Metrics: &config.PlainMetrics{Interface: "node0"}}}, 7443),
			admit: map[string]bool{"tcp/7443": true, "tcp/9100": true},
		},
		{
			name:  "plain metrics on another link",
			p:     PolicyFor(config.Config{API: config.API{Metrics: &config.PlainMetrics{Interface: "eth9"}}}, 7443),
			admit: map[string]bool{"tcp/7443": true},
		},
		{
			name:  "no kubernetes, node API on 9090",
			p:     PolicyFor(config.Config{Firewall: config.Firewall{Allow: allow[:1]}}, 9090),
			admit: map[string]bool{"tcp/9090": true, "tcp/8080": true},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			netnstest.In(t, node, func() { err = Apply(context.Background(), tt.p) })
			if err != nil {
				t.Fatalf("Apply: %v\nruleset:\n%s", err, Render(tt.p))
			}
			for _, c := range []struct {
				proto string
				ports []int
			}{{"tcp", tcpPorts}, {"udp", udpPorts}} {
				for _, port := range c.ports {
					key := fmt.Sprintf("%s/%d", c.proto, port)
					want, wait := tt.admit[key], dropWait
					if want {
						wait = admitWait
					}
					if got := probe(t, prober, c.proto, nodeAddr, port, wait); got != want {
						t.Errorf("%s from the prober: connects = %v, want %v", key, got, want)
					}
				}
			}
			// Loopback is always admitted, whatever the port.
			if !probe(t, node, "tcp", "127.0.0.1", 22, admitWait) {
				t.Errorf("tcp/22 over loopback inside the node is dropped")
			}
			// ICMP passes (path MTU discovery, neighbour discovery).
			if err := pingFrom(t, prober, nodeAddr); err != nil {
				t.Errorf("ping from the prober: %v", err)
			}
		})
	}

	// Applying again replaces the table: one table inet cairn, one chain.
	var out []byte
	var err error
	netnstest.In(t, node, func() {
		if err = Apply(context.Background(), Policy{APIPort: 7443}); err == nil {
			out, err = exec.Command(NftPath, "list", "ruleset").CombinedOutput()
		}
	})
	if err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}
	if n := strings.Count(string(out), "table inet cairn"); n != 1 {
		t.Errorf("ruleset has %d tables inet cairn after re-applying, want 1:\n%s", n, out)
	}
	if n := strings.Count(string(out), "dport 6443"); n != 0 {
		t.Errorf("re-applied ruleset still admits 6443:\n%s", out)
	}
}

// pingFrom sends one ICMP echo request from inside ns and waits for the
// reply.
func pingFrom(t *testing.T, ns netns.NsHandle, addr string) (err error) {
	t.Helper()
	netnstest.In(t, ns, func() {
		var c net.PacketConn
		if c, err = net.ListenPacket("ip4:icmp", "0.0.0.0"); err != nil {
			return
		}
		defer c.Close()
		// Echo request: type 8, code 0, checksum, identifier, sequence.
		req := []byte{8, 0, 0, 0, 0xca, 0x1f, 0, 1, 'p', 'i', 'n', 'g'}
		sum := 0
		for i := 0; i < len(req); i += 2 {
			sum += int(req[i])<<8 | int(req[i+1])
		}
		sum = (sum >> 16) + (sum & 0xffff)
		sum = ^(sum + sum>>16) & 0xffff
		req[2], req[3] = byte(sum>>8), byte(sum)
		if _, err = c.WriteTo(req, &net.IPAddr{IP: net.ParseIP(addr)}); err != nil {
			return
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		buf := make([]byte, 128)
		for {
			var n int
			if n, _, err = c.ReadFrom(buf); err != nil {
				return
			}
			if n >= 8 && buf[0] == 0 && buf[4] == 0xca && buf[5] == 0x1f { // echo reply, ours
				return
			}
		}
	})
	return err
}
