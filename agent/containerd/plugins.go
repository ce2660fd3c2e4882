// Package containerd runs containerd's daemon inside the process that calls
// Main: cairn-agent carries it, so /usr/bin/containerd in a slot is a link
// to cairn-agent and the two share their code pages (the agent's
// containerd client is most of its size) instead of each mapping its own.
//
// The daemon has exactly the plugins a Cairn node uses: overlayfs
// snapshots, local content, the metadata store, tasks through runc shims
// (cgroups v2), images, leases, transfer and the gRPC/ttrpc servers. Built
// with the `cri` tag it also carries the CRI plugins the bundled Kubernetes
// talks to (cri.go). Left out on purpose: btrfs, devmapper, zfs, native,
// blockfile and erofs snapshotters, NRI, the restart monitor, image
// verifiers, tracing, the debug and metrics listeners, cgroups v1 metrics.
package containerd

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"strings"

	"github.com/containerd/containerd/v2/cmd/containerd/command"
	"github.com/containerd/containerd/v2/version"

	_ "github.com/containerd/containerd/api/types/runc/options"
	_ "github.com/containerd/containerd/v2/core/metrics/cgroups/v2"
	_ "github.com/containerd/containerd/v2/core/runtime/v2"
	_ "github.com/containerd/containerd/v2/plugins/content/local/plugin"
	_ "github.com/containerd/containerd/v2/plugins/diff/walking/plugin"
	_ "github.com/containerd/containerd/v2/plugins/events"
	_ "github.com/containerd/containerd/v2/plugins/gc"
	_ "github.com/containerd/containerd/v2/plugins/leases"
	_ "github.com/containerd/containerd/v2/plugins/metadata"
	_ "github.com/containerd/containerd/v2/plugins/mount"
	_ "github.com/containerd/containerd/v2/plugins/sandbox"
	_ "github.com/containerd/containerd/v2/plugins/server/grpc"
	_ "github.com/containerd/containerd/v2/plugins/server/ttrpc"
	_ "github.com/containerd/containerd/v2/plugins/services/containers"
	_ "github.com/containerd/containerd/v2/plugins/services/content"
	_ "github.com/containerd/containerd/v2/plugins/services/diff"
	_ "github.com/containerd/containerd/v2/plugins/services/events"
	_ "github.com/containerd/containerd/v2/plugins/services/healthcheck"
	_ "github.com/containerd/containerd/v2/plugins/services/images"
	_ "github.com/containerd/containerd/v2/plugins/services/introspection"
	_ "github.com/containerd/containerd/v2/plugins/services/leases"
	_ "github.com/containerd/containerd/v2/plugins/services/mounts"
	_ "github.com/containerd/containerd/v2/plugins/services/namespaces"
	_ "github.com/containerd/containerd/v2/plugins/services/sandbox"
	_ "github.com/containerd/containerd/v2/plugins/services/snapshots"
	_ "github.com/containerd/containerd/v2/plugins/services/streaming"
	_ "github.com/containerd/containerd/v2/plugins/services/tasks"
	_ "github.com/containerd/containerd/v2/plugins/services/transfer"
	_ "github.com/containerd/containerd/v2/plugins/services/version"
	_ "github.com/containerd/containerd/v2/plugins/services/warning"
	_ "github.com/containerd/containerd/v2/plugins/snapshots/overlay/plugin"
	_ "github.com/containerd/containerd/v2/plugins/streaming"
	_ "github.com/containerd/containerd/v2/plugins/transfer"
)

// Name is the program name that selects the daemon: a process started as
// /usr/bin/containerd.
const Name = "containerd"

// Main runs the daemon with args (args[0] is the program name) until it
// stops, and returns the process exit code.
func Main(args []string) int {
	setVersion()
	if err := command.App().Run(context.Background(), args); err != nil {
		fmt.Fprintln(os.Stderr, "containerd:", err)
		return 1
	}
	return 0
}

// setVersion reports the containerd release this binary was built with
// (from the module graph, so no linker flags are needed) in `--version`
// and the introspection API.
func setVersion() {
	version.Revision = "cairn"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	for _, d := range bi.Deps {
		if d.Path == version.Package {
			version.Version = strings.TrimPrefix(d.Version, "v")
		}
	}
}
