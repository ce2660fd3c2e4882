package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cairn-edge/cairn/agent/config"
	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/agent/kubeboot"
	"github.com/cairn-edge/cairn/agent/network"
	"github.com/cairn-edge/cairn/agent/services"
	"github.com/cairn-edge/cairn/agent/supervisor"
)

// containerdSocket is the system containerd's socket (agent/runtime/config.toml).
const containerdSocket = "/run/containerd/containerd.sock"

// startKubernetes brings up the bundled Kubernetes: the node's cluster
// address, then kubeboot (PKI, images, cairn-kube under a supervisor).
func startKubernetes(ctx context.Context, conf config.Kubernetes, hostname string, log *slog.Logger) (*kubeboot.Node, error) {
	if err := network.EnsureClusterLink(); err != nil {
		return nil, err
	}
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	reaper := supervisor.NewReaper()
	go reaper.Run(ctx)
	// A start of cairn-kube costs the whole control plane's start (tens of
	// seconds of CPU on a small board): one that keeps failing (a full
	// disk) waits up to 2 minutes between tries, so the node stays usable;
	// one that ran longer than that restarts after a second.
	sup := &supervisor.Supervisor{Reaper: reaper, Log: log, Backoff: supervisor.Backoff{Min: time.Second, Max: 2 * time.Minute}}
	out := &services.RotatingFile{Path: filepath.Join(contract.LogDir, "cairn-kube.log"), MaxSize: 10 << 20, Keep: 3}
	return kubeboot.Start(ctx, sup, kubeboot.Options{
		Config:     conf,
		NodeName:   strings.ToLower(hostname),
		NodeIP:     network.ClusterAddress.Addr().String(),
		Containerd: containerdSocket,
		Log:        log,
		Say:        say,
		Output:     out,
	})
}
