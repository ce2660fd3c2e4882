// Command cairn-agent is the node agent: a host process that cairn-init
// starts and restarts. It loads the host firewall (package agent/firewall),
// mounts the boot partitions (the ESP at /boot; on a Raspberry Pi
// CAIRN-AUTO there and the slots' boot partitions under /run/cairn/boot),
// configures the network (with the per-node override file found in
// /boot), keeps the clock sane, runs the system
// services as containers in containerd and serves the node API over mutual
// TLS. It prints `cairn: agent ready` on the console once the API listens.
//
// The same binary is containerd's daemon when started under that name
// (/usr/bin/containerd links to it; see package agent/containerd), and, in
// a slot that runs Kubernetes, the kubelet's mount and umount (package
// agent/mountcmd).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/agent/api/crl"
	"github.com/cairn-edge/cairn/agent/boot/blockdev"
	"github.com/cairn-edge/cairn/agent/clock"
	"github.com/cairn-edge/cairn/agent/config"
	"github.com/cairn-edge/cairn/agent/console"
	"github.com/cairn-edge/cairn/agent/containerd"
	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/agent/health"
	"github.com/cairn-edge/cairn/agent/mountcmd"
	"github.com/cairn-edge/cairn/agent/network"
	"github.com/cairn-edge/cairn/agent/release"
	"github.com/cairn-edge/cairn/agent/services"
	"github.com/cairn-edge/cairn/agent/watchdog"
	"golang.org/x/sys/unix"
)

var say = console.Say

func main() {
	switch filepath.Base(os.Args[0]) {
	case containerd.Name:
		os.Exit(containerd.Main(os.Args))
	case "mount":
		os.Exit(mountcmd.Mount(os.Args, os.Stderr))
	case "umount":
		os.Exit(mountcmd.Umount(os.Args, os.Stderr))
	}
	log := console.Logger().With("svc", "agent")
	slog.SetDefault(log)
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGTERM, unix.SIGINT)
	defer stop()
	if err := run(ctx, log); err != nil {
		say("warning: agent: %v", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger) error {
	rel, err := release.Read(release.Path)
	if err != nil {
		return err
	}
	slot := bootSlot()
	conf, err := config.Load(config.Path)
	if err != nil {
		// The image is broken, but a reachable node can still be fixed:
		// go on with defaults (DHCP, no services).
		say("warning: %v; using defaults", err)
		conf = config.Config{}
	}

	// First the watchdog cairn-init armed: from here the agent pets it.
	wdog := openWatchdog(log)
	awaitEntropy(log)

	// The node's one health model: status, /metrics and the console's
	// readiness lines read it (package agent/health).
	hm := health.New(health.WithLogger(log))

	port := conf.API.Port
	if port == 0 {
		port = api.DefaultPort
	}
	// The host firewall before any link is up.
	applyFirewall(ctx, conf, port, hm, log)

	// Clock first: TLS and signature checks need a sane time.
	clk := clock.New(conf.Clock, clock.WithLogger(log), clock.WithBuildTime(buildTime()))
	if moved, err := clk.EnsureFloor(); err != nil {
		log.Warn("clock floor", "err", err)
	} else if moved {
		log.Info("clock set forward to the last known time")
	}
	go clk.Run(ctx)
	defer clk.Save()
	go watchClock(ctx, hm.Part("clock"), clk)

	// CAIRN-DATA's free space, for every node; Kubernetes says it its way.
	disk := health.NewDisk(contract.DataMount)
	disk.Log = log
	hm.Attach(disk.Part())
	go disk.Run(ctx)

	// The boot partitions: the per-node files, and the boot loader's.
	media, err := detectBootMedia(blockdev.FindPartition)
	if err == nil {
		err = media.mount()
	}
	if err != nil {
		log.Warn("boot partitions not mounted; no per-node settings", "err", err)
	}
	netConf, err := config.ApplyNodeFile(conf.Network, config.NodeFile, log)
	if err != nil {
		say("warning: %s ignored: %v", config.NodeFile, err)
	}
	if netConf.Hostname == "" {
		if netConf.Hostname, err = defaultHostname(); err != nil {
			log.Warn("no host name", "err", err)
		}
	}
	if err := bindResolvConf(); err != nil {
		log.Warn("resolv.conf", "err", err)
	}
	nm, err := network.New(netConf, network.WithLogger(log), network.WithResolvConf(resolvConf))
	if err != nil {
		say("warning: network settings invalid: %v; using DHCP", err)
		if nm, err = network.New(config.Network{Hostname: netConf.Hostname}, network.WithLogger(log), network.WithResolvConf(resolvConf)); err != nil {
			return err
		}
	}
	go func() {
		if err := nm.Run(ctx); err != nil && ctx.Err() == nil {
			say("warning: network: %v", err)
		}
	}()
	go watchNetwork(ctx, hm.Part("network"), nm)

	// Upgrades before Kubernetes: a rollback restores its datastore first.
	updater, trial, recoverErr := startUpdates(ctx, conf.Update, rel, slot, media, hm, watchdogReset(wdog), log)
	wd := settleWatchdog(ctx, wdog, trial, conf.Update.Gate(), log)

	var svcs *services.Manager
	svcPart := hm.Part("services")
	if len(conf.Services) == 0 {
		svcPart.Set(health.OK, "no system services")
	} else if svcs, err = services.NewManager(conf.Services, services.Options{Log: log}); err != nil {
		say("warning: services: %v", err)
		svcPart.Set(health.Failed, err.Error())
	}
	if svcs != nil {
		go watchServices(ctx, hm, svcPart, svcs)
		defer func() {
			stopCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			svcs.Stop(stopCtx)
		}()
	}

	var apiOpts []api.Option
	if conf.Kubernetes != nil && recoverErr != nil {
		// A rollback whose datastore restore failed: the older API
		// server must not read what the newer one wrote.
		why := fmt.Sprintf("not started: %v (restore the snapshot or remove %s, then restart the agent)", recoverErr, contract.KubeDatastore)
		say("warning: kubernetes: %s", why)
		hm.Part("kubernetes").Set(health.Failed, why)
	} else if conf.Kubernetes != nil {
		kube, err := startKubernetes(ctx, *conf.Kubernetes, netConf.Hostname, log)
		if err != nil {
			say("warning: kubernetes: %v", err)
			hm.Part("kubernetes").Set(health.Failed, err.Error())
		} else {
			hm.Attach(kube.Health())
			go kube.WatchDisk(ctx, disk)
			apiOpts = append(apiOpts, api.WithKubernetes(kube))
		}
	}

	apiPart := hm.Part("api")
	tlsConf, nodeName, err := api.LoadServerTLS(api.CAFile, contract.NodeCertFile, contract.NodeKeyFile)
	if err != nil {
		// Everything else runs on; only the management API is off, and
		// says so. A trial slot fails its gate on it and rolls back.
		say("warning: node API off: %v", err)
		apiPart.Set(health.Failed, "off: "+err.Error())
	}
	var crls *crl.Store
	var crlWarning string
	if tlsConf != nil {
		if crls, crlWarning, err = openCRL(); err != nil {
			// Serving without the list would let revoked clients in.
			say("warning: node API off: %v", err)
			apiPart.Set(health.Failed, "off: "+err.Error())
			tlsConf = nil
		}
	}
	var ln net.Listener
	if tlsConf != nil {
		if ln, err = net.Listen("tcp", fmt.Sprintf(":%d", port)); err != nil {
			return fmt.Errorf("node API: %w", err)
		}
		apiPart.Set(health.OK, fmt.Sprintf("serving :%d as %s", port, nodeName))
		if crlWarning != "" {
			say("warning: node API: %s", crlWarning)
			apiPart.Set(health.Degraded, crlWarning)
		}
	}
	node := &api.LocalNode{Release: rel, Slot: slot}
	if updater != nil {
		apiOpts = append(apiOpts, api.WithUpgrades(updater))
	}
	apiOpts = append(apiOpts, api.WithClock(clockAdapter{clk}))
	srv := api.NewServer(node, serviceAdapter{svcs}, append(apiOpts, api.WithHealth(hm), api.WithLogger(log), api.WithCRL(crls))...)
	if m := conf.API.Metrics; m != nil {
		// The spec asked for /metrics in plain HTTP on one link.
		mln, err := api.ListenDevice(ctx, m.Interface, m.ListenPort())
		if err != nil {
			say("warning: plain metrics on %s: %v", m.Interface, err)
		} else {
			log.Info("plain metrics", "interface", m.Interface, "port", m.ListenPort())
			go func() {
				if err := srv.ServeMetrics(ctx, mln); err != nil {
					log.Warn("plain metrics", "err", err)
				}
			}()
		}
	}
	if ln != nil {
		say("agent ready api=:%d node=%s", port, nodeName)
	} else {
		say("agent ready api=off")
	}
	if trial {
		go func() {
			end := watchdog.Disarm
			if err := updater.Gate(ctx); err != nil {
				log.Warn("upgrade gate", "err", err)
				end = watchdog.LeaveArmed
			}
			releaseWatchdog(wd, end, log)
		}()
	}
	if ln == nil {
		<-ctx.Done()
		return nil
	}
	return srv.Serve(ctx, ln, tlsConf)
}
