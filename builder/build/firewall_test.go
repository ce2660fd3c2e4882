package build

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent/contract"
)

// TestBuildFirewallWithoutKubernetes: an image without Kubernetes whose
// host firewall is on gets the board's firewall tools and modules; on a
// board without a firewall section the build is refused, naming the
// board file and the fix.
func TestBuildFirewallWithoutKubernetes(t *testing.T) {
	const spec = "name: test\nversion: 1.0.0\ndisk:\n  espSize: 64MiB\n  slotSize: 16MiB\n  dataSize: 16MiB\nfirewall:\n  enabled: true\n  allow: [{port: 8080}]\n"
	f := newFixture(t)
	writeFiles(t, f.dir, map[string]string{"images/test.yaml": spec})
	out := t.TempDir()
	if _, err := f.build(t, out); err == nil || !strings.Contains(err.Error(), "turns the host firewall on, but board test-board has no firewall section") || !strings.Contains(err.Error(), "test-board.yaml, or remove firewall.enabled") {
		t.Fatalf("Build on a board without firewall = %v, want the missing section named", err)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("refused build left %d files in the output directory", len(entries))
	}

	pack(t, f.layout, "nft", "amd64", map[string]string{"usr/sbin/nft": "#!fake nft", "lib/x86_64-linux-gnu/libnftables.so.1": "fake lib"})
	board, err := os.ReadFile(filepath.Join(f.boards, "test-board.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, f.dir, map[string]string{"boards/test-board.yaml": string(board) + "firewall:\n  tools: [oci-layout:../oci:nft]\n  modules: [bridge]\n"})
	res, err := f.build(t, out)
	if err != nil {
		t.Fatal(err)
	}
	s := openSlot(t, res)
	list := s.list()
	for _, want := range []string{"usr/sbin/nft", "lib/x86_64-linux-gnu/libnftables.so.1", "kernel/net/bridge/bridge.ko", "kernel/net/802/stp.ko"} {
		if !strings.Contains(list, want) {
			t.Errorf("slot lacks %s", want)
		}
	}
	if mods := s.cat(contract.SlotPath(contract.ModulesList)); !strings.Contains(mods, "bridge") {
		t.Errorf("modules list lacks the firewall's module:\n%s", mods)
	}
	if conf := s.cat(contract.SlotPath(contract.AgentConfig)); !strings.Contains(conf, "enabled: true") || !strings.Contains(conf, "port: 8080") {
		t.Errorf("agent config lacks the firewall:\n%s", conf)
	}
}
