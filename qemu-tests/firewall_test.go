package qemutests

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/agent/health"
	"github.com/cairn-edge/cairn/agent/kubeboot"
	"github.com/cairn-edge/cairn/qemu-tests/qemu"
)

// admitted are the TCP ports a Kubernetes server node's default firewall
// policy lets the LAN reach: the node API, the Kubernetes API and the
// NodePort range.
func admitted(port int) bool {
	return port == 7443 || port == 6443 || port >= 30000 && port <= 32767
}

// checkFirewall probes, from the host through QEMU's network as a LAN
// client would, every TCP port the node listens on for the LAN (read from
// the host's own socket table by a pod): only those the policy admits
// answer.
func checkFirewall(t *testing.T, vm *qemu.VM, k *kubeboot.API) {
	t.Helper()
	if !strings.Contains(vm.Console(), "cairn: firewall on: ") {
		t.Error("the console does not say the firewall is on")
	}
	ctx := context.Background()
	// Something listening on the host's network that the policy does not
	// admit (a hostNetwork pod on :8080), and a NodePort Service, which
	// it does.
	apply(t, k, firewallManifest)
	waitFor(t, "the hostNetwork listener running", kubeTimeout, func() (bool, string) { return podPhase(ctx, k, "host-listener", "Running") })
	apply(t, k, hostPod("default", "sockets", "/var/lib/cairn", true, "cat", "/proc/1/net/tcp", "then", "cat", "/proc/1/net/tcp6"))
	waitFor(t, "the pod listing the node's sockets", kubeTimeout, func() (bool, string) { return podSucceeded(ctx, k, "sockets") })
	table, err := kubeGetText(ctx, k, "/api/v1/namespaces/default/pods/sockets/log")
	if err != nil {
		t.Fatal(err)
	}
	ports := lanListeners(table)
	if !slices.Contains(ports, 7443) || !slices.Contains(ports, 6443) || !slices.Contains(ports, 8080) {
		t.Fatalf("the node's socket table lacks the node API, the Kubernetes API or the hostNetwork listener; ports %v from:\n%s", ports, table)
	}
	ports = append(ports, webNodePort) // no socket: the Service's DNAT
	var mu sync.Mutex
	answered := map[int]bool{}
	var wg sync.WaitGroup
	for _, p := range ports {
		hostPort := freePort(t)
		if _, err := vm.QMP("human-monitor-command", map[string]string{"command-line": fmt.Sprintf("hostfwd_add tcp:127.0.0.1:%d-:%d", hostPort, p)}); err != nil {
			t.Fatalf("hostfwd_add for port %d: %v", p, err)
		}
		wg.Go(func() {
			a := answers(fmt.Sprintf("127.0.0.1:%d", hostPort))
			mu.Lock()
			answered[p] = a
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, p := range ports {
		if answered[p] != admitted(p) {
			t.Errorf("port %d: answers %v, the policy admits it %v", p, answered[p], admitted(p))
		}
	}
	t.Logf("LAN ports the node listens on: %v; answered: %v", ports, answered)
}

// webNodePort is the NodePort of firewallManifest's Service.
const webNodePort = 30080

// firewallManifest runs the test program serving :8080 on the host's
// network, and exposes the web Deployment on a NodePort.
var firewallManifest = fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: host-listener, namespace: default}
spec:
  hostNetwork: true
  containers:
  - {name: serve, image: cairn.test/hello:1, imagePullPolicy: Never, args: [serve]}
---
apiVersion: v1
kind: Service
metadata: {name: web-nodeport, namespace: default}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: %d}]
`, webNodePort)

// lanListeners reads /proc/net/tcp{,6} tables and returns the ports in
// servicesFirewall is the services image's firewall: on, with no
// Kubernetes, admitting one more port (nothing listens there).
const servicesFirewall = "firewall:\n  enabled: true\n  allow: [{port: 8081}]\n"

// checkFirewallOn probes a node without Kubernetes whose firewall
// (servicesFirewall) is on, from the host through QEMU's network: the
// node API and the admitted 8081 answer (8081 with a reset, as nothing
// listens there), 8080 is dropped; the firewall's health part is ok.
func checkFirewallOn(t *testing.T, vm *qemu.VM, st api.Status) {
	t.Helper()
	if !strings.Contains(vm.Console(), "cairn: firewall on: ") {
		t.Error("the console does not say the firewall is on")
	}
	if p, ok := st.Health.Part("firewall"); !ok || p.State != health.OK {
		t.Errorf("health part firewall = %+v, want ok", p)
	}
	probes := map[int]bool{api.DefaultPort: true, 8081: true, 8080: false}
	var wg sync.WaitGroup
	for port, want := range probes {
		hostPort := freePort(t)
		if _, err := vm.QMP("human-monitor-command", map[string]string{"command-line": fmt.Sprintf("hostfwd_add tcp:127.0.0.1:%d-:%d", hostPort, port)}); err != nil {
			t.Fatalf("hostfwd_add for port %d: %v", port, err)
		}
		wg.Go(func() {
			if got := answers(fmt.Sprintf("127.0.0.1:%d", hostPort)); got != want {
				t.Errorf("port %d: answers %v, want %v", port, got, want)
			}
		})
	}
	wg.Wait()
}

// LISTEN bound to every address or to a non-loopback one, sorted.
func lanListeners(table string) []int {
	var ports []int
	for _, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || f[3] != "0A" { // LISTEN
			continue
		}
		addr, portHex, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		raw, err := hex.DecodeString(addr)
		port, perr := strconv.ParseUint(portHex, 16, 16)
		if err != nil || perr != nil {
			continue
		}
		// The kernel prints the address as 32-bit words in host order.
		for i := 0; i+4 <= len(raw); i += 4 {
			raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
		}
		ip := net.IP(raw)
		if ip.IsLoopback() || ip.IsLinkLocalUnicast() {
			continue
		}
		// Bound to one address that is not the LAN's (the cluster link):
		// the LAN cannot reach it whatever the policy.
		if !ip.IsUnspecified() && !ip.Equal(net.IPv4(10, 0, 2, 15)) {
			continue
		}
		if !slices.Contains(ports, int(port)) {
			ports = append(ports, int(port))
		}
	}
	slices.Sort(ports)
	return ports
}

// answers reports whether a TCP client at addr (a QEMU port forward) gets
// anything back from the guest within 5 s: bytes, or the connection
// closed. QEMU accepts the host side itself, so a port the guest drops
// looks like a connection that never answers.
func answers(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	// Plain HTTP: HTTP servers answer, TLS servers answer with an error
	// or an alert, others close.
	c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	_, err = c.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return true
}

// freePort is a TCP port of 127.0.0.1 nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
