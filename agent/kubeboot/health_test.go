package kubeboot

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-edge/cairn/agent/supervisor"
)

func TestLowSpace(t *testing.T) {
	const MiB, GiB = 1 << 20, 1 << 30
	for _, tt := range []struct {
		name       string
		free, size uint64
		was, want  bool
	}{
		{"plenty", 10 * GiB, 32 * GiB, false, false},
		{"under 5 %", 1 * GiB, 32 * GiB, false, true},
		{"just over 5 %", 1700 * MiB, 32 * GiB, false, false},
		{"just over 5 %, was low: still low until 6 %", 1700 * MiB, 32 * GiB, true, true},
		{"over 6 %, was low", 2 * GiB, 32 * GiB, true, false},
		{"small disk: 64 MiB floor", 60 * MiB, 512 * MiB, false, true},
		{"small disk, enough", 100 * MiB, 512 * MiB, false, false},
		{"full", 0, 4 * GiB, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := lowSpace(tt.free, tt.size, tt.was); got != tt.want {
				t.Errorf("lowSpace(%d MiB of %d MiB, was %v) = %v, want %v", tt.free>>20, tt.size>>20, tt.was, got, tt.want)
			}
		})
	}
}

// TestWatchDisk: a full disk is a problem in status and on the console
// while it lasts, and the console hears when it is over.
func TestWatchDisk(t *testing.T) {
	var free atomic.Uint64
	free.Store(1 << 30)
	defer func(f func(string, *unix.Statfs_t) error, e time.Duration) { statfs, diskEvery = f, e }(statfs, diskEvery)
	statfs = func(path string, st *unix.Statfs_t) error {
		st.Bsize, st.Blocks, st.Bavail = 4096, 4<<30/4096, free.Load()/4096
		return nil
	}
	diskEvery = time.Millisecond
	n, con := testNode(t, http.NotFoundHandler())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.watchDisk(ctx, "/var/lib/cairn"); close(done) }()
	defer func() { cancel(); <-done }()

	problems := func() []string { return n.health.cond.list() }
	waitUntil(t, "nothing to report", func() error {
		if len(problems()) != 0 {
			return errors.New(strings.Join(problems(), "; "))
		}
		return nil
	})
	free.Store(20 << 20)
	waitUntil(t, "the full disk reported", func() error {
		if p := problems(); len(p) != 1 || !strings.Contains(p[0], "CAIRN-DATA is nearly full: 20 MiB free of 4096 MiB") {
			return errors.New(strings.Join(p, "; "))
		}
		return nil
	})
	free.Store(3 << 30)
	waitUntil(t, "the problem over", func() error {
		if len(problems()) != 0 {
			return errors.New(strings.Join(problems(), "; "))
		}
		return nil
	})
	if con.count("warning: kubernetes: CAIRN-DATA") != 1 || con.count("resolved: disk space") != 1 {
		t.Errorf("console %q, want the problem said once and its end once", con.lines)
	}
}

// TestDatastoreRecords: cairn-kube's record of a database it moved aside is
// a problem until the user removes it.
func TestDatastoreRecords(t *testing.T) {
	dir := t.TempDir()
	n, con := testNode(t, http.NotFoundHandler())
	n.datastoreRecords(dir)
	if p := n.health.cond.list(); len(p) != 0 {
		t.Fatalf("problems %q without records", p)
	}
	record := filepath.Join(dir, "state.db.corrupt-20260301T120000Z.txt")
	os.WriteFile(record, []byte("2026-03-01T12:00:00Z: /var/lib/cairn/kube/db/state.db was corrupt (file is not a database); moved aside to state.db.corrupt-20260301T120000Z, the cluster started with an empty datastore\n"), 0o600)
	n.datastoreRecords(dir)
	n.datastoreRecords(dir)
	p := n.health.cond.list()
	if len(p) != 1 || !strings.Contains(p[0], "file is not a database") || !strings.Contains(p[0], "remove "+strings.TrimSuffix(record, ".txt")+"*") {
		t.Fatalf("problems %q, want the record and how to clear it", p)
	}
	if con.count("file is not a database") != 1 {
		t.Errorf("console %q, want the record said once", con.lines)
	}
	os.Remove(record)
	n.datastoreRecords(dir)
	if p := n.health.cond.list(); len(p) != 0 {
		t.Errorf("problems %q after the record was removed", p)
	}
}

// failingWriter fails every write, as a log file on a full disk does.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, unix.ENOSPC }

// TestLogSinkKeepsProcessAlive: a process whose log cannot be written is
// killed by SIGPIPE when the error reaches os/exec's copy; through logSink
// it runs on.
func TestLogSinkKeepsProcessAlive(t *testing.T) {
	script := "for i in $(seq 1 300); do echo log line $i; done"
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	n, _ := testNode(t, http.NotFoundHandler())
	cmd := exec.Command("sh", "-c", script)
	cmd.Stdout = &logSink{w: failingWriter{}, log: n.opts.Log}
	if err := cmd.Run(); err != nil {
		t.Errorf("through logSink: %v, want a clean exit", err)
	}
	cmd = exec.Command("sh", "-c", script)
	cmd.Stdout = failingWriter{}
	if err := cmd.Run(); err == nil {
		t.Log("without logSink the process survived too (the pipe buffer held its output)")
	}
}

// TestPKIOptions: the API server's service address is the service
// network's first.
func TestPKIOptions(t *testing.T) {
	n, _ := testNode(t, http.NotFoundHandler())
	n.opts.Config.ServiceCIDR = "10.96.0.0/12"
	n.opts.NodeIP = "10.254.0.1"
	o := n.pkiOptions()
	if o.ServiceIP != "10.96.0.1" || o.NodeName != "edge-1" || len(o.NodeIPs) != 1 || o.NodeIPs[0] != "10.254.0.1" || o.ClusterDomain != "cluster.local" {
		t.Errorf("pkiOptions = %+v", o)
	}
}

// countingWriter counts the lines containing "started".
type countingWriter struct{ n atomic.Int32 }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n.Add(int32(strings.Count(string(p), "started")))
	return len(p), nil
}

// TestRestartKube: restartKube stops cairn-kube and runKube starts it again
// at once, counting a run; that is not a crash to report.
func TestRestartKube(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	n, _ := testNode(t, http.NotFoundHandler())
	ctx, cancel := context.WithCancel(context.Background())
	out := &countingWriter{}
	done := make(chan struct{})
	go func() {
		n.runKube(ctx, &supervisor.Host{Log: n.opts.Log, Backoff: supervisor.DefaultBackoff}, supervisor.Service{
			Name: "fake-kube", Path: "/bin/sh", Args: []string{"-c", "echo started; exec sleep 60"}, Output: out,
			Exited: func(e supervisor.Exit) { n.exited(e, &lastLines{}) },
		})
		close(done)
	}()
	defer func() { cancel(); <-done }()
	waitUntil(t, "a first run", func() error {
		if out.n.Load() != 1 {
			return fmt.Errorf("%d runs", out.n.Load())
		}
		return nil
	})
	began := time.Now()
	n.restartKube()
	waitUntil(t, "a second run", func() error {
		if out.n.Load() != 2 {
			return fmt.Errorf("%d runs", out.n.Load())
		}
		return nil
	})
	t.Logf("restarted in %s", time.Since(began))
	if got := n.health.runs.Load(); got != 1 {
		t.Errorf("runs = %d, want 1 (watch applies the manifests again after it)", got)
	}
	if st := n.Status(context.Background()); len(st.Problems) != 0 {
		t.Errorf("problems %q: a restart is not a crash", st.Problems)
	}
}

// TestRenewPKI: a new PKI is made quietly; certificates issued again later
// are said on the console.
func TestRenewPKI(t *testing.T) {
	n, con := testNode(t, http.NotFoundHandler())
	n.opts.NodeIP = "10.254.0.1"
	dir := t.TempDir()
	if renewed, err := n.renewPKI(dir); err != nil || !renewed {
		t.Fatalf("renewPKI on an empty directory = %v, %v; want a new PKI", renewed, err)
	}
	if renewed, err := n.renewPKI(dir); err != nil || renewed {
		t.Fatalf("renewPKI again = %v, %v; want nothing to do", renewed, err)
	}
	os.Remove(filepath.Join(dir, "apiserver.crt"))
	if renewed, err := n.renewPKI(dir); err != nil || !renewed {
		t.Fatalf("renewPKI without apiserver.crt = %v, %v; want it issued", renewed, err)
	}
	if len(con.lines) != 1 || con.lines[0] != "kubernetes certificates renewed: apiserver" {
		t.Errorf("console %q, want one line for apiserver", con.lines)
	}
}

// TestWatchPKI: certificates issued while cairn-kube runs restart it; a
// PKI that cannot be renewed is a problem until it can.
func TestWatchPKI(t *testing.T) {
	defer func(e time.Duration) { pkiEvery = e }(pkiEvery)
	pkiEvery = 10 * time.Millisecond
	n, con := testNode(t, http.NotFoundHandler())
	n.opts.NodeIP = "10.254.0.1"
	dir := t.TempDir()
	if _, err := n.renewPKI(dir); err != nil {
		t.Fatal(err)
	}
	var restarts atomic.Int32
	n.health.restart = func() { restarts.Add(1) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.watchPKI(ctx, dir); close(done) }()
	defer func() { cancel(); <-done }()

	os.Remove(filepath.Join(dir, "kubelet.crt"))
	waitUntil(t, "a restart for the new kubelet.crt", func() error {
		if restarts.Load() != 1 {
			return fmt.Errorf("%d restarts", restarts.Load())
		}
		return nil
	})
	key, _ := os.ReadFile(filepath.Join(dir, "ca.key"))
	os.Remove(filepath.Join(dir, "ca.key"))
	os.Remove(filepath.Join(dir, "kubelet.crt"))
	waitUntil(t, "the problem reported", func() error {
		if p := n.health.cond.list(); len(p) != 1 || !strings.Contains(p[0], "cannot be renewed") {
			return fmt.Errorf("problems %q", p)
		}
		return nil
	})
	os.WriteFile(filepath.Join(dir, "ca.key"), key, 0o600)
	waitUntil(t, "the problem over", func() error {
		if p := n.health.cond.list(); len(p) != 0 {
			return fmt.Errorf("problems %q", p)
		}
		return nil
	})
	if con.count("restarting cairn-kube to load the renewed certificates") < 2 {
		t.Errorf("console %q, want the restarts said", con.lines)
	}
}
