package main

import (
	"context"
	"github.com/cairn-edge/cairn/agent/contract"
	"os"
	"os/signal"
	"runtime/debug"

	"github.com/cairn-edge/cairn/agent/bootcount"
	"github.com/cairn-edge/cairn/agent/console"
	"github.com/cairn-edge/cairn/agent/power"
	"github.com/cairn-edge/cairn/agent/release"
	"github.com/cairn-edge/cairn/agent/supervisor"
	"golang.org/x/sys/unix"
)

// stage2Mounts are the writable places a read-only slot needs, and what
// container runtimes expect to find.
var stage2Mounts = []mountSpec{
	{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
	{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "gid=5,mode=0620,ptmxmode=0666"},
	{"tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
	{"cgroup2", "/sys/fs/cgroup", "cgroup2", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
}

func stage2() {
	for _, m := range stage2Mounts {
		if err := m.mount(); err != nil {
			log.Warn("mount failed", "err", err)
		}
	}
	// Ctrl-Alt-Del sends SIGINT to PID 1 instead of an immediate reboot.
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF); err != nil {
		log.Warn("could not route Ctrl-Alt-Del to init", "err", err)
	}

	loadModules("slot")
	applySysctl() // after the modules: some settings are theirs
	cl := kernelCmdline()
	slot := bootSlot(cl)
	if err := tuneFaultAround(cl); err != nil {
		say("warning: memory: %v", err)
	}
	rel, err := release.Read(release.Path)
	if err != nil {
		fatal("slot %s: %v (the slot image is incomplete; boot the other slot)", slot, err)
	}
	// Listen for shutdown requests before saying we are up: a press of the
	// power button right after the console line must not be lost.
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT)
	key := power.WatchPowerKey(ctx)

	say("init ok slot=%s version=%s", slot, rel.Version)
	reportData()

	reaper := supervisor.NewReaper()
	go reaper.Run(context.Background()) // reaps until the very end
	stopHost := startHostServices(reaper)
	// From here on init only waits: hand back what loading the modules
	// (whole .ko files read into memory) and the boot work used.
	debug.FreeOSMemory()

	action := power.Poweroff
	select {
	case <-key:
		log.Info("power key pressed")
	case sig := <-sigs:
		log.Info("signal received", "signal", sig.String())
		if sig == unix.SIGINT {
			action = power.Reboot
		}
	}
	cancel()
	stopHost()
	err = power.Shutdown(action, shutdownOptions(action))
	fatal("%s failed: %v", action, err)
}

// reportData counts this boot on the data partition and prints the data
// contract line, or a warning when /var does not persist.
func reportData() {
	var st unix.Statfs_t
	if err := unix.Statfs("/var", &st); err != nil {
		say("warning: data: cannot stat /var: %v", err)
		return
	}
	sizeMiB := uint64(st.Blocks) * uint64(st.Bsize) >> 20
	if st.Type == unix.TMPFS_MAGIC {
		if ram, _ := kernelCmdline().RAMSlot(); ram {
			log.Info("data", "var", "tmpfs", "size_mib", sizeMiB, "media", contract.MediaRAM) // as stage 1 said
			return
		}
		say("warning: data not persistent: /var is a tmpfs (%d MiB); see the data partition warning above", sizeMiB)
		return
	}
	boots, warn, err := bootcount.Increment(bootcount.Path)
	if warn != nil {
		log.Warn("boot counter was unreadable; starting again", "err", warn)
	}
	if err != nil {
		say("warning: data: %v (is /var read-only or full?)", err)
		return
	}
	say("data ok boots=%d size=%dMiB", boots, sizeMiB)
}

// hostServices are the host processes PID 1 keeps running, in start order;
// a slot without one of them (a minimal image) simply lacks it.
var hostServices = []supervisor.Service{
	{Name: "containerd", Path: "/usr/bin/containerd", Args: []string{"--config", "/etc/containerd/config.toml"}, Env: hostEnv},
	{Name: "cairn-agent", Path: "/usr/bin/cairn-agent", Env: hostEnv},
}

// hostEnv is the host services' environment: the kernel starts PID 1
// without a PATH, containerd finds its shim and runc through it, and the
// Go runtime settings for memory (see memoryEnv).
var hostEnv = append([]string{"PATH=/usr/bin:/usr/sbin:/bin:/sbin", "HOME=/root"}, memoryEnv...)

// startHostServices starts the host services under a supervisor and
// returns a function that stops them in reverse order (the agent stops its
// containers before containerd goes), each within the supervisor's grace.
func startHostServices(reaper *supervisor.Reaper) (stop func()) {
	host := supervisor.Host{Reaper: reaper, Log: log, Backoff: supervisor.DefaultBackoff}
	type running struct {
		cancel context.CancelFunc
		done   chan struct{}
	}
	var all []running
	for _, svc := range hostServices {
		if _, err := os.Stat(svc.Path); err != nil {
			continue
		}
		svc.Output = console.Out
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			host.Run(ctx, svc)
		}()
		all = append(all, running{cancel, done})
	}
	return func() {
		for i := len(all) - 1; i >= 0; i-- {
			all[i].cancel()
			<-all[i].done
		}
	}
}
