package kubeboot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	// Named so, as this package's type health holds cairn-kube's runs.
	nodehealth "github.com/cairn-edge/cairn/agent/health"
	"github.com/cairn-edge/cairn/agent/kubepki"
	"github.com/cairn-edge/cairn/agent/supervisor"
)

// What goes wrong on a node with nobody at its console, and what the
// agent does about it (docs/kubernetes.md#bad-input):
//
//   - a corrupt datastore: cairn-kube moves it aside and starts empty,
//     leaving a record (datastoreRecords); the agent shows the record until
//     it is removed and applies the manifests again (deploy);
//   - a full CAIRN-DATA: WatchDisk says so while it lasts; cairn-kube's
//     log sink drops lines rather than fail (logSink), which would kill
//     cairn-kube with SIGPIPE;
//   - certificates ending: renewPKI runs at start and every pkiEvery and
//     restarts cairn-kube when it issued any;
//   - a malformed manifest: deploy shows it until the file is fixed or gone.
//
// Each lasting problem is a condition: it shows in status while it holds,
// and the console hears when it starts and when it ends.

// conditions are problems that hold now, by key, shown in status until
// cleared; unlike Node.problem's messages, which are events. They are the
// problems of the node's "kubernetes" health part (package agent/health),
// which decides what is news for the console.
type conditions struct {
	once sync.Once
	p    *nodehealth.Part
}

// part is the Kubernetes part of the node's health, made on first use (a
// Node in a test is a struct literal).
func (c *conditions) part() *nodehealth.Part {
	c.once.Do(func() { c.p = nodehealth.NewPart("kubernetes") })
	return c.p
}

// set makes key's condition msg and reports whether that changed it.
func (c *conditions) set(key, msg string) bool { return c.part().Raise(key, msg) }

// clear removes key's condition and reports whether there was one.
func (c *conditions) clear(key string) bool { return c.part().Clear(key) }

// keys are the keys of the conditions that hold and start with prefix.
func (c *conditions) keys(prefix string) []string {
	var out []string
	for _, k := range c.part().Keys() {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	return out
}

// list is the messages, in key order.
func (c *conditions) list() []string { return c.part().Problems() }

// Health is the node's Kubernetes as a part of the node's health model, to
// attach to it: its state follows the phase (starting, ready, not ready,
// failed) and its problems are the lasting problems status shows.
func (n *Node) Health() *nodehealth.Part { return n.health.cond.part() }

// setCondition records that key's problem holds, saying so on the console
// when it is new or changed.
func (n *Node) setCondition(key, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if n.health.cond.set(key, msg) {
		n.opts.Log.Warn("kubernetes problem", "problem", key, "detail", msg)
		n.opts.Say("warning: kubernetes: %s", msg)
	}
}

// clearCondition records that key's problem is over, saying so.
func (n *Node) clearCondition(key string) {
	if n.health.cond.clear(key) {
		n.opts.Log.Info("kubernetes problem resolved", "problem", key)
		n.opts.Say("kubernetes: resolved: %s", key)
	}
}

// health is what Node keeps for the checks in this file.
type health struct {
	cond conditions
	// runs counts cairn-kube's runs that ended; watch applies the
	// manifests again after each (the datastore may be new and empty).
	runs atomic.Int64
	// restart, when set, stops the running cairn-kube so it starts again
	// at once (runKube).
	mu      sync.Mutex
	restart func()
}

// runKube runs cairn-kube (svc) as one of host's processes until ctx
// ends, and again at once whenever restartKube asks (new certificates).
// Crashes are restarted with host's backoff, each reported by exited.
func (n *Node) runKube(ctx context.Context, host *supervisor.Host, svc supervisor.Service) {
	sup := host.Supervisor(svc)
	n.health.mu.Lock()
	n.health.restart = sup.RestartNow
	n.health.mu.Unlock()
	sup.Run(ctx)
}

// restartKube stops cairn-kube so that runKube starts it again.
func (n *Node) restartKube() {
	n.health.mu.Lock()
	restart := n.health.restart
	n.health.mu.Unlock()
	if restart != nil {
		restart()
	}
}

// exited is cairn-kube's Exited hook: it counts the run, and a crash is
// an event problem with its last words; watch applies the manifests again
// once the cluster is back. A restart restartKube asked for is no crash.
func (n *Node) exited(e supervisor.Exit, last *lastLines) {
	n.health.runs.Add(1)
	if e.Requested {
		return
	}
	n.problem("cairn-kube exited (%s), restarting; it said: %s", e.Reason, last)
}

// pkiEvery is how often the cluster PKI is checked for certificates to
// renew (kubepki renews leaves 30 days before they end).
var pkiEvery = 12 * time.Hour

// pkiOptions are the node's PKI options: its name and cluster address,
// the API server's service address (the service network's first).
func (n *Node) pkiOptions() kubepki.Options {
	c := n.opts.Config
	_, svc, _ := net.ParseCIDR(c.ServiceCIDR)
	svcIP := append(net.IP{}, svc.IP.To4()...)
	svcIP[3]++
	return kubepki.Options{NodeName: n.opts.NodeName, NodeIPs: []string{n.opts.NodeIP}, ServiceIP: svcIP.String(), ClusterDomain: c.ClusterDomain}
}

// renewPKI brings the PKI in dir up to date (kubepki.Renew), says what it
// renewed and reports whether it issued anything.
func (n *Node) renewPKI(dir string) (bool, error) {
	_, err := os.Stat(filepath.Join(dir, "ca.crt"))
	fresh := errors.Is(err, fs.ErrNotExist)
	issued, err := kubepki.Renew(dir, n.pkiOptions())
	switch {
	case len(issued) > 0 && fresh:
		n.opts.Log.Info("cluster PKI made", "dir", dir)
	case len(issued) > 0:
		n.opts.Log.Info("kubernetes certificates renewed", "certificates", issued)
		n.opts.Say("kubernetes certificates renewed: %s", strings.Join(issued, " "))
	}
	return len(issued) > 0, err
}

// watchPKI renews the PKI every pkiEvery and restarts cairn-kube when
// certificates were issued, so every component loads them (the API
// server would reload its own, but the kubelet's and the controllers'
// client certificates are read at start).
func (n *Node) watchPKI(ctx context.Context, dir string) {
	t := time.NewTicker(pkiEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		renewed, err := n.renewPKI(dir)
		if err != nil {
			n.setCondition("certificates", "certificates in %s cannot be renewed: %v", dir, err)
		} else {
			n.clearCondition("certificates")
		}
		if renewed {
			n.opts.Say("kubernetes: restarting cairn-kube to load the renewed certificates")
			n.restartKube()
		}
	}
}

// WatchDisk reports CAIRN-DATA nearly full, as d (the node's disk part,
// package agent/health) reads it, until space returns, on servers and
// agents alike. A full disk fails a server's datastore writes, the kubelet
// evicts pods and cairn-kube may exit: the node keeps running and says why.
func (n *Node) WatchDisk(ctx context.Context, d *nodehealth.Disk) {
	for {
		r, next := d.Watch()
		switch {
		case r.At.IsZero() || r.Err != nil:
			// Not read yet, or unreadable: d logs why; the last
			// verdict stands.
		case r.Low:
			n.setCondition("disk space", "CAIRN-DATA is nearly full: %d MiB free of %d MiB: the kubelet evicts pods (and a server's datastore cannot write); free space (delete unused images, volumes, logs) or give the node a bigger disk",
				r.Free>>20, r.Size>>20)
		default:
			n.clearCondition("disk space")
		}
		select {
		case <-ctx.Done():
			return
		case <-next:
		}
	}
}

// datastoreRecords shows every record cairn-kube left of a corrupt
// database it moved aside (<db>.corrupt-<time>.txt in dir, see
// agent/kube/README.md) as a condition, until the user removes it.
func (n *Node) datastoreRecords(dir string) {
	records, _ := filepath.Glob(filepath.Join(dir, "state.db.corrupt-*.txt"))
	seen := map[string]bool{}
	for _, r := range records {
		data, err := os.ReadFile(r)
		if err != nil {
			continue
		}
		line, _, _ := strings.Cut(strings.TrimSpace(string(data)), "\n")
		key := "datastore " + filepath.Base(r)
		seen[key] = true
		moved := strings.TrimSuffix(r, ".txt")
		n.setCondition(key, "datastore: %s; the agent applied the built-in and auto-deploy manifests again, other objects must be created again; remove %s* (e.g. from a privileged pod) to clear this", line, moved)
	}
	for _, key := range n.health.cond.keys("datastore ") {
		if !seen[key] {
			n.clearCondition(key)
		}
	}
}

// logSink is where cairn-kube's output goes: a write that fails (a full
// disk under the log file) is dropped, never returned. An error would
// stop the copy from cairn-kube's stdout pipe, and cairn-kube's next log
// line would then kill it with SIGPIPE: a crash loop for a full disk.
type logSink struct {
	w      io.Writer
	log    *slog.Logger
	failed atomic.Bool
}

func (s *logSink) Write(p []byte) (int, error) {
	_, err := s.w.Write(p)
	switch {
	case err != nil && !s.failed.Swap(true):
		s.log.Warn("cairn-kube's log: lines are dropped until writes work again", "err", err)
	case err == nil && s.failed.Swap(false):
		s.log.Info("cairn-kube's log: writing again")
	}
	return len(p), nil
}
