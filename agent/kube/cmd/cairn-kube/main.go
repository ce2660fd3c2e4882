// Command cairn-kube is a single-node Kubernetes in one process: kine on
// SQLite, kube-apiserver, kube-controller-manager, kube-scheduler, the
// kubelet and kube-proxy (nftables mode) as goroutines, from upstream
// Kubernetes.
//
//	cairn-kube server --config FILE    the control plane and the node components
//	cairn-kube agent --config FILE     the kubelet and kube-proxy, joining a server
//	cairn-kube snapshot SRC.db DST.db  a consistent copy of the datastore, while it runs
//	cairn-kube version
//
// The config file format and the PKI it reads are in agent/kube/README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/cairn-edge/cairn/agent/kube/cluster"
	"github.com/cairn-edge/cairn/agent/kube/component"
	"github.com/cairn-edge/cairn/agent/kube/config"
	"github.com/cairn-edge/cairn/agent/kube/datastore"
	"github.com/cairn-edge/cairn/agent/kube/memtrim"
	"k8s.io/component-base/version"
)

const usage = `usage: cairn-kube server --config FILE | agent --config FILE | snapshot SRC.db DST.db | version`

func main() {
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	switch cmd := os.Args[1]; cmd {
	case "version":
		fmt.Printf("cairn-kube %s\n", version.Get().GitVersion)
	case "server", "agent":
		fs := flag.NewFlagSet(cmd, flag.ExitOnError)
		path := fs.String("config", "/var/lib/cairn/kube/config.yaml", "the config file (see agent/kube/README.md)")
		fs.Parse(os.Args[2:])
		if err := run(cluster.Mode(cmd), *path); err != nil {
			log.Fatalf("cairn-kube %s: %v", cmd, err)
		}
	case "snapshot":
		if len(os.Args) != 4 {
			fmt.Fprintln(os.Stderr, usage)
			os.Exit(2)
		}
		log.SetFlags(0) // the node agent logs the output, with its own times
		if err := snapshot(os.Args[2], os.Args[3]); err != nil {
			log.Fatalf("cairn-kube %v", err)
		}
	default:
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
}

func run(mode cluster.Mode, path string) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	if cfg.MemoryLimitMiB > 0 {
		debug.SetMemoryLimit(int64(cfg.MemoryLimitMiB) << 20)
	}
	if cfg.GCPercent != 0 {
		debug.SetGCPercent(cfg.GCPercent)
	}
	if err := component.Setup(cfg.LogLevel); err != nil {
		return err
	}
	// The one signal handler of the process: the components get ctx.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log.Printf("cairn-kube %s %s starting (node %s, data %s)", mode, version.Get().GitVersion, cfg.NodeName, cfg.DataDir)
	return cluster.Run(ctx, mode, cfg, func() { time.AfterFunc(settleTime, releaseStartupPages) })
}

// snapshot copies the datastore at src to dst (datastore.Snapshot); the
// node agent runs it before an upgrade's trial boot (agent/kubeboot).
func snapshot(src, dst string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	began := time.Now()
	if err := datastore.Snapshot(ctx, src, dst); err != nil {
		return err
	}
	fi, err := os.Stat(dst)
	if err != nil {
		return err
	}
	log.Printf("cairn-kube: snapshot of %s in %s: %d bytes in %s", src, dst, fi.Size(), time.Since(began).Round(time.Millisecond))
	return nil
}

// settleTime is how long after every component started the startup work
// (the kubelet's first sync, the controllers' first lists) is taken to be
// over.
const settleTime = time.Minute

// releaseStartupPages gives back the binary's pages only starting needed
// (package memtrim); the rest faults back in as used.
func releaseStartupPages() {
	n, err := memtrim.ReleaseStartupPages()
	if err != nil {
		log.Printf("cairn-kube: releasing startup pages: %v", err)
		return
	}
	log.Printf("cairn-kube: released the startup pages of %d MiB of code and tables", n>>20)
}
