package qemutests

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/qemu-tests/doccmd"
	"github.com/cairn-edge/cairn/qemu-tests/qemu"
)

// TestDocs runs every `cairn validate`, `cairn build` and `cairn
// provision` that README.md and docs/ show, as shown, in the repository
// with the inputs the QEMU tests use; a build writes into a directory of
// its own, a provisioning onto a copy of the minimal image. The node
// commands are run by TestAgentAPI and TestKubernetes (runDocumented), and
// qemu-tests/doccmd's own test fails for a command nothing runs.
func TestDocs(t *testing.T) {
	share(t, 1)
	found, err := doccmd.Find(env.Root)
	if err != nil {
		t.Fatal(err)
	}
	cmds := found.For(doccmd.DocsTest)
	if len(cmds) == 0 {
		t.Fatal("no cairn validate or cairn build in README.md or docs/*.md")
	}
	for _, c := range cmds {
		t.Run(strings.ReplaceAll(c.Pos(), "/", "_"), func(t *testing.T) {
			args := doccmd.BuilderArgs(c, doccmd.BuildDirs{Out: t.TempDir(), Bin: binDir, PKI: pkiDir, Cache: env.Cache})
			if c.Args[1] == "provision" {
				args = doccmd.ProvisionArgs(c, qemu.CopyImage(t, images["qemu-x86_64"]), pkiDir, filepath.Join(t.TempDir(), "node.yaml"))
			}
			cmd := exec.Command(filepath.Join(binDir, "cairn"), args...)
			cmd.Dir = env.Root
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s: %s: %v (fix the command in the docs, or what broke it)\n%s", c.Pos(), c.Text, err, out)
			}
		})
	}
}

// runDocumented runs the `cairn node` commands of README.md and docs/
// that doccmd gives to test, against vm's forwarded API with the client
// config config instead of the ones they name. Each must succeed.
func runDocumented(t *testing.T, test string, vm *qemu.VM, config string) {
	t.Helper()
	found, err := doccmd.Find(env.Root)
	if err != nil {
		t.Fatal(err)
	}
	server := fmt.Sprintf("127.0.0.1:%d", vm.HostPort(api.DefaultPort))
	for _, c := range found.For(test) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, err := exec.CommandContext(ctx, filepath.Join(binDir, "cairn"), doccmd.NodeArgs(c, config, server)...).CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("documented at %s: %s: %v (fix the command in the docs, or what broke it)\n%s", c.Pos(), c.Text, err, out)
			continue
		}
		t.Logf("documented at %s: ran %s", c.Pos(), c.Text)
	}
}
