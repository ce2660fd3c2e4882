package qemutests

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/agent/api/role"
	"github.com/cairn-edge/cairn/builder/build"
	"github.com/cairn-edge/cairn/builder/pki"
	"github.com/cairn-edge/cairn/qemu-tests/doccmd"
	"github.com/cairn-edge/cairn/qemu-tests/qemu"
)

// servicesImage is an x86_64 image with one system service, the test
// program in testdata/hello packed as an OCI image; made by TestMain when
// the container runtime binaries are there.
var servicesImage *build.Result

func needServices(t *testing.T) {
	t.Helper()
	if servicesImage == nil {
		t.Skip("no container runtime binaries (make runtime, then make test sets CAIRN_TEST_BIN)")
	}
}

// node runs `cairn node` against the VM's forwarded API port.
func node(t *testing.T, vm *qemu.VM, config string, args ...string) (string, error) {
	t.Helper()
	full := append([]string{"node", "--config", config, "--server", fmt.Sprintf("127.0.0.1:%d", vm.HostPort(api.DefaultPort))}, args...)
	out, err := exec.Command(filepath.Join(binDir, "cairn"), full...).CombinedOutput()
	return string(out), err
}

// apiClient is an API client for vm's forwarded API port with config's
// credentials, for tests that time or repeat calls.
func apiClient(t *testing.T, vm *qemu.VM, config string) *api.Client {
	t.Helper()
	cfg, err := pki.LoadClientConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	pool, cert, err := cfg.TLS()
	if err != nil {
		t.Fatal(err)
	}
	c, err := api.NewClient(fmt.Sprintf("https://127.0.0.1:%d", vm.HostPort(api.DefaultPort)), api.ClientTLS(pool, cert, cfg.ServerName))
	if err != nil {
		t.Fatal(err)
	}
	c.Timeout = 10 * time.Second
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func nodeJSON(t *testing.T, vm *qemu.VM, config string, v any, args ...string) {
	t.Helper()
	out, err := node(t, vm, config, append(args, "--json")...)
	if err != nil {
		t.Fatalf("cairn node %v: %v\n%s", args, err, out)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("cairn node %v: %v\n%s", args, err, out)
	}
}

// TestAgentAPI boots a node on QEMU's user network: it takes a DHCP lease,
// serves the API over mutual TLS as the node it was provisioned as, runs
// the test service, restarts it when it exits, and hands its logs back. A
// flood of idle connections and bad handshakes leaves it manageable.
// Clients without the image's credentials, or asking for another node,
// are refused.
func TestAgentAPI(t *testing.T) {
	needServices(t)
	share(t, everyCore)
	disk := qemu.CopyImage(t, servicesImage.Image)
	os.Truncate(disk, 2<<30)
	vm := qemu.StartT(t, qemu.WithArch(qemu.AMD64), qemu.WithDisk(disk), qemu.WithMemory(1024), qemu.WithPortForward(0, api.DefaultPort))
	// The node serves its API as the node it was provisioned as.
	m, err := vm.Expect(bootTimeout, `cairn: agent ready api=:7443 node=`+testNode)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("agent ready %v after QEMU start", m.At)

	var st api.Status
	deadline := time.Now().Add(time.Minute)
	for {
		nodeJSON(t, vm, servicesImage.NodeConfig, &st, "status")
		if hasAddress(st, "10.0.2.15/24") || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Second)
	}
	if st.Slot != "a" || st.Version != "0.2.0" || !hasAddress(st, "10.0.2.15/24") {
		t.Fatalf("status = %+v, want slot a, version 0.2.0 and the DHCP address 10.0.2.15/24", st)
	}
	// The health model's section, with every part of a node without
	// Kubernetes.
	if st.Health == nil {
		t.Fatal("status has no health section")
	}
	for _, part := range []string{"clock", "disk", "services", "firewall"} {
		if _, ok := st.Health.Part(part); !ok {
			t.Errorf("health %+v has no part %q", st.Health, part)
		}
	}
	t.Logf("health: %s: %s", st.Health.State, st.Health.Reason)
	// The memory settings every image carries are in force.
	checkMemorySettings(t, st)

	// The service exits every ~3 s with status 3: it must come back.
	var restarted api.Service
	deadline = time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) && restarted.Restarts == 0 {
		var svcs []api.Service
		nodeJSON(t, vm, servicesImage.NodeConfig, &svcs, "services")
		for _, s := range svcs {
			if s.Name == "hello" {
				restarted = s
			}
		}
		time.Sleep(2 * time.Second)
	}
	if restarted.Restarts == 0 {
		t.Fatalf("service hello = %+v, want it restarted after exiting", restarted)
	}
	logs, err := node(t, vm, servicesImage.NodeConfig, "logs", "hello")
	if err != nil || !strings.Contains(logs, "hello from the test service") {
		t.Fatalf("logs hello: %v\n%s", err, logs)
	}
	// The service ran twice by now (and keeps printing): --tail 2 is two
	// of its lines, no more.
	if last, err := node(t, vm, servicesImage.NodeConfig, "logs", "hello", "--tail", "2"); err != nil || strings.Count(last, "\n") != 2 || strings.Count(last, "test service") != 2 {
		t.Errorf("logs hello --tail 2: %v\n%q, want two of its lines; all it kept:\n%s", err, last, logs)
	}
	if out, err := node(t, vm, servicesImage.NodeConfig, "restart", "nosuch"); err == nil || !strings.Contains(out, "nosuch") {
		t.Errorf("restart of an unknown service: %v\n%s", err, out)
	}
	// The node commands README.md and docs/ show work as shown.
	runDocumented(t, doccmd.AgentAPITest, vm, servicesImage.NodeConfig)

	// Its host firewall is on without Kubernetes: only what it admits
	// answers.
	checkFirewallOn(t, vm, st)

	// Its only NTP server lies, 10 years ahead: the clock stays, and
	// the administrator can set it.
	checkTimeAttack(t, vm, servicesImage.NodeConfig)

	// Unauthenticated, anyone on the network can flood the API: the node
	// stays manageable.
	floodNode(t, vm, servicesImage.NodeConfig, "hello")

	// Least privilege: a monitor credential reads, and nothing more.
	checkRoles(t, vm, servicesImage.NodeConfig)

	// Credentials of another PKI, and an expired client certificate of
	// the right CA, are refused.
	other, err := pki.Ensure(filepath.Join(t.TempDir(), "other"), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	otherConfig := filepath.Join(t.TempDir(), "other.yaml")
	if err := pki.WriteClientConfig(otherConfig, "https://cairn-node:7443", testNode, other); err != nil {
		t.Fatal(err)
	}
	if out, err := node(t, vm, otherConfig, "status"); err == nil || !strings.Contains(out, "certificate from another CA") {
		t.Errorf("a client trusting another CA must refuse the node: %v\n%s", err, out)
	}
	mine, err := pki.Ensure(pkiDir, pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	foreign := *mine
	foreign.Client = other.Client // trusts the node, presents a stranger's certificate
	foreignConfig := filepath.Join(t.TempDir(), "foreign.yaml")
	if err := pki.WriteClientConfig(foreignConfig, "https://cairn-node:7443", testNode, &foreign); err != nil {
		t.Fatal(err)
	}
	if out, err := node(t, vm, foreignConfig, "status"); err == nil || !strings.Contains(out, "refused") {
		t.Errorf("a client certificate of another CA: %v\n%s", err, out)
	}
	// Each node has its own identity: a client asking for another node
	// (edge-2, or a config of another node) refuses this one.
	if out, err := node(t, vm, servicesImage.NodeConfig, "--name", "edge-2", "status"); err == nil || !strings.Contains(out, `is not the node asked for: it is "`+testNode+`", not edge-2`) {
		t.Errorf("a client asking for edge-2 must refuse %s: %v\n%s", testNode, err, out)
	}
	expiredConfig := expiredClient(t)
	if out, err := node(t, vm, expiredConfig, "status"); err == nil {
		t.Errorf("an expired client certificate was accepted:\n%s", out)
	}
	if err := vm.PowerDown(time.Minute); err != nil {
		t.Fatal(err)
	}

	// Booted again with no network and a real-time clock in 2001, the
	// node sets its clock forward to the time it saved, the right one,
	// not the liar's.
	vm = qemu.StartT(t, qemu.WithArch(qemu.AMD64), qemu.WithDisk(disk), qemu.WithMemory(1024), qemu.WithExtraArgs("-rtc", "base=2001-01-01T00:00:00"))
	m, err = vm.Expect(bootTimeout, `clock set forward to the last known time".* from=2001-\S+ to=(\S+)`)
	if err != nil {
		t.Fatal(err)
	}
	if to, err := time.Parse(time.RFC3339, m.Groups[1]); err != nil || time.Since(to).Abs() > 15*time.Minute {
		t.Errorf("offline reboot: the clock went forward to %s (%v), want about now", m.Groups[1], err)
	}
	if err := vm.PowerDown(time.Minute); err != nil {
		t.Fatal(err)
	}
}

// checkRoles issues a monitor credential with cairn node issue: it reads
// status and metrics and is refused reboot, kubeconfig and join
// credentials, each refusal in the node's audit log with its name; once
// an admin revoked it (cairn node revoke, pushed to the node), the node
// refuses it at the handshake.
func checkRoles(t *testing.T, vm *qemu.VM, admin string) {
	t.Helper()
	cairn := func(args ...string) (string, error) {
		out, err := exec.Command(filepath.Join(binDir, "cairn"), args...).CombinedOutput()
		return string(out), err
	}
	// A copy of the run's PKI (the same CA): the revocation list it gets
	// must not go into the images other tests build from the run's.
	own := filepath.Join(t.TempDir(), "pki")
	if out, err := exec.Command("cp", "-a", pkiDir, own).CombinedOutput(); err != nil {
		t.Fatalf("copying the PKI: %v\n%s", err, out)
	}
	mon := filepath.Join(t.TempDir(), "grafana.node.yaml")
	if out, err := cairn("node", "issue", "--pki", own, "--name", "grafana", "--role", "monitor", "--node", testNode, "-o", mon); err != nil {
		t.Fatalf("cairn node issue: %v\n%s", err, out)
	}
	for _, read := range [][]string{{"status"}, {"metrics"}} {
		if out, err := node(t, vm, mon, read...); err != nil {
			t.Errorf("monitor: %v: %v\n%s", read, err, out)
		}
	}
	for _, c := range []struct {
		args []string
		call string
	}{
		{[]string{"reboot"}, "POST /v1/reboot"},
		{[]string{"kubeconfig"}, "GET /v1/kubeconfig"},
		{[]string{"join-kubeconfig", "--node", "edge-9"}, "GET /v1/join-kubeconfig"},
	} {
		out, err := node(t, vm, mon, c.args...)
		if err == nil || !strings.Contains(out, "monitor credential 'grafana' may not "+c.call) {
			t.Errorf("monitor: %v: %v\n%s", c.args, err, out)
		}
		if _, err := vm.Expect(10*time.Second, `msg=audit .*client=grafana role=monitor call="`+regexp.QuoteMeta(c.call)+`" status=403`); err != nil {
			t.Errorf("no audit line for the monitor's %s: %v", c.call, err)
		}
	}
	if out, err := cairn("node", "revoke", "--pki", own, "--config", admin, "--server", fmt.Sprintf("127.0.0.1:%d", vm.HostPort(api.DefaultPort)), "grafana"); err != nil {
		t.Fatalf("cairn node revoke: %v\n%s", err, out)
	}
	if out, err := node(t, vm, mon, "status"); err == nil || !strings.Contains(out, "refused") {
		t.Errorf("a revoked monitor credential: %v\n%s", err, out)
	}
	if out, err := node(t, vm, admin, "status"); err != nil {
		t.Errorf("the admin after the revocation: %v\n%s", err, out)
	}
}

// testSysctl is a kernel setting every test image carries (the spec's
// sysctl section): harmless, and unlike the kernel's default (60).
var testSysctl = map[string]string{"vm.swappiness": "10"}

// checkMemorySettings asserts, from values the node read back from /proc
// and /sys, that the memory settings of every image are in force:
// transparent huge pages off, so the reserve is the kernel's own size for
// the box (khugepaged raises it to 45 MiB in a 1 GiB guest), and the
// spec's sysctl section applied by cairn-init.
func checkMemorySettings(t *testing.T, st api.Status) {
	t.Helper()
	m := st.Memory
	if m.TransparentHugepages != "never" {
		t.Errorf("transparent huge pages: %q, want never (spec.OSCmdline)", m.TransparentHugepages)
	}
	if m.MinFreeBytes == 0 || m.MinFreeBytes > 8<<20 {
		t.Errorf("vm.min_free_kbytes = %d, want the kernel's own reserve for 1 GiB (about 3,900), not khugepaged's", m.MinFreeBytes>>10)
	}
	for k, want := range testSysctl {
		if got := st.Sysctl[k]; got != want {
			t.Errorf("sysctl %s = %q on the node, want %q from the spec (node's sysctl: %v)", k, got, want, st.Sysctl)
		}
	}
	t.Logf("memory: MemTotal − MemAvailable %d MiB, min_free_kbytes %d, THP %s", (m.TotalBytes-m.AvailableBytes)>>20, m.MinFreeBytes>>10, m.TransparentHugepages)
}

func hasAddress(st api.Status, addr string) bool {
	for _, a := range st.Addresses {
		if a.Address == addr {
			return true
		}
	}
	return false
}

// expiredClient writes a client config whose certificate, issued by the
// image's own CA, expired yesterday.
func expiredClient(t *testing.T) string {
	t.Helper()
	p, err := pki.Ensure(pkiDir, pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	old, err := pki.Issue(p.CA, pki.Request{CommonName: "cairn-admin", Usage: pki.ClientAuth, Role: role.Admin, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	expired := *p
	expired.Client = old
	path := filepath.Join(t.TempDir(), "expired.yaml")
	if err := pki.WriteClientConfig(path, "https://cairn-node:7443", testNode, &expired); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestNoNetworkAndBadNodeFile boots the services image with no network
// device and a malformed per-node file on the ESP: the file is ignored with
// a console warning, and every baked service still starts.
func TestNoNetworkAndBadNodeFile(t *testing.T) {
	share(t, 1)
	needServices(t)
	disk := qemu.CopyImage(t, servicesImage.Image)
	putOnESP(t, disk, "cairn-node.yaml", "hostname: [not, a, name\n")
	vm := qemu.StartT(t, qemu.WithArch(qemu.AMD64), qemu.WithDisk(disk), qemu.WithMemory(1024))
	if _, err := vm.Expect(bootTimeout, `cairn: warning: /boot/cairn-node.yaml ignored`); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.Expect(2*time.Minute, `cairn: services ready count=1`); err != nil {
		t.Fatal(err)
	}
	if err := vm.PowerDown(time.Minute); err != nil {
		t.Fatal(err)
	}
}

// TestNodeFile gives one card its own hostname and static address through
// the per-node file on the ESP.
func TestNodeFile(t *testing.T) {
	share(t, 1)
	needServices(t)
	disk := qemu.CopyImage(t, servicesImage.Image)
	putOnESP(t, disk, "cairn-node.yaml", `hostname: edge-7
interfaces:
  - name: eth0
    dhcp: false
    addresses: [10.0.2.50/24]
    gateway: 10.0.2.2
dns: [10.0.2.3]
`)
	vm := qemu.StartT(t, qemu.WithArch(qemu.AMD64), qemu.WithDisk(disk), qemu.WithMemory(1024),
		qemu.WithPortForwardTo(0, "10.0.2.50", api.DefaultPort))
	if _, err := vm.Expect(bootTimeout, `cairn: agent ready`); err != nil {
		t.Fatal(err)
	}
	var st api.Status
	deadline := time.Now().Add(time.Minute)
	for {
		out, err := node(t, vm, servicesImage.NodeConfig, "status", "--json")
		if err == nil && json.Unmarshal([]byte(out), &st) == nil && hasAddress(st, "10.0.2.50/24") || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Second)
	}
	if st.Hostname != "edge-7" || !hasAddress(st, "10.0.2.50/24") {
		t.Fatalf("status = %+v, want hostname edge-7 and address 10.0.2.50/24 from the node file", st)
	}
	if err := vm.PowerDown(time.Minute); err != nil {
		t.Fatal(err)
	}
}

// putOnESP writes a file into the image's ESP (the FAT at 1 MiB) with mtools.
func putOnESP(t *testing.T, disk, name, content string) {
	t.Helper()
	src := filepath.Join(t.TempDir(), name)
	os.WriteFile(src, []byte(content), 0o644)
	if b, err := exec.Command("mcopy", "-i", disk+"@@1M", src, "::/"+name).CombinedOutput(); err != nil {
		t.Fatalf("mcopy: %v\n%s", err, b)
	}
}
