package build

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/builder/source"
)

// kubeProxyRules is a ruleset in the shape kube-proxy's nftables mode and
// the CNI plugins write: a verdict map on a concatenation, DNAT to
// endpoints picked by numgen, masquerade, fib, conntrack state, reject.
const kubeProxyRules = `table ip cairn-kube-proxy-test {
	map service-ips {
		type ipv4_addr . inet_proto . inet_service : verdict
		elements = { 10.96.0.1 . tcp . 443 : goto svc }
	}
	chain nat-prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr . meta l4proto . th dport vmap @service-ips
	}
	chain nat-output {
		type nat hook output priority -100; policy accept;
		ip daddr . meta l4proto . th dport vmap @service-ips
	}
	chain nat-postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		meta mark & 0x4000 != 0 masquerade fully-random
	}
	chain filter-input {
		type filter hook input priority filter; policy accept;
		ct state new fib daddr type local counter
		ct state invalid drop
		ip daddr 10.96.0.2 tcp dport 80 goto reject-chain
	}
	chain reject-chain {
		reject
	}
	chain svc {
		numgen random mod 2 vmap { 0 : goto ep1, 1 : goto ep2 }
	}
	chain ep1 {
		meta mark set meta mark | 0x4000
		meta l4proto tcp dnat to 10.42.0.5:8443
	}
	chain ep2 {
		meta l4proto tcp dnat to 10.42.0.6:8443
	}
}
table inet cni_plugins_masquerade {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 10.42.0.7 ip daddr != 10.42.0.0/24 masquerade
	}
}
`

// TestDebianNftables runs the nft that `make inputs` packs for the boards'
// kubernetes.tools on its own: chrooted into the unpacked image, so only
// what the image holds is there, it prints its version and, in a throwaway
// network namespace, loads and lists a kube-proxy-like ruleset (text and
// JSON, as knftables reads it). Needs root and the inputs
// (CAIRN_TEST_INPUTS, which make test sets).
func TestDebianNftables(t *testing.T) {
	inputs := os.Getenv("CAIRN_TEST_INPUTS")
	if inputs == "" {
		t.Skip("CAIRN_TEST_INPUTS is not set (make test sets it to .cache/oci after make inputs)")
	}
	if os.Geteuid() != 0 {
		t.Skip("chroot and network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip (iproute2) is not installed")
	}
	c, err := source.OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ref, err := source.Parse("oci-layout:"+inputs+":debian-nftables-"+runtime.GOARCH, "")
	if err != nil {
		t.Fatal(err)
	}
	in, err := c.Resolve(context.Background(), ref, runtime.GOARCH)
	if err != nil {
		t.Fatalf("%v (make inputs packs it)", err)
	}
	unpacked, err := c.Tree(in)
	if err != nil {
		t.Fatal(err)
	}
	tree := unpacked.Dir()

	// Only nft, its libraries, the loader and netbase's two files; no links.
	err = filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(tree, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			t.Errorf("%s is a symlink", rel)
		case rel == source.TreeMarker, rel == "usr/sbin/nft", rel == "etc/protocols", rel == "etc/services", strings.Contains(filepath.Base(rel), ".so."):
		default:
			t.Errorf("unexpected file %s", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	run := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Stdin = strings.NewReader(stdin)
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, b)
		}
		return string(b)
	}
	if v := run("", "chroot", tree, "/usr/sbin/nft", "--version"); !strings.HasPrefix(v, "nftables v") {
		t.Errorf("nft --version: %s", v)
	}
	ns := "cairn-nft-test-" + strconv.Itoa(os.Getpid())
	run("", "ip", "netns", "add", ns)
	defer exec.Command("ip", "netns", "del", ns).Run()
	nft := []string{"ip", "netns", "exec", ns, "chroot", tree, "/usr/sbin/nft"}
	run("", append(nft, "list", "ruleset")...)
	run(kubeProxyRules, append(nft, "-f", "-")...)
	list := run("", append(nft, "list", "ruleset")...)
	for _, want := range []string{"10.96.0.1 . tcp . 443 : goto svc", "masquerade fully-random", "numgen random mod 2", "fib daddr type local", "dnat to 10.42.0.5:8443", "table inet cni_plugins_masquerade"} {
		if !strings.Contains(list, want) {
			t.Errorf("nft list ruleset lacks %q:\n%s", want, list)
		}
	}
	if js := run("", append(nft, "--json", "list", "ruleset")...); !strings.Contains(js, `"name": "cairn-kube-proxy-test"`) {
		t.Errorf("nft --json list ruleset:\n%s", js)
	}
}
