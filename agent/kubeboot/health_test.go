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

	nodehealth "github.com/cairn-edge/cairn/agent/health"
	"github.com/cairn-edge/cairn/agent/supervisor"
)

// TestWatchDisk: a full disk is a problem in status and on the console
// while it lasts, and the console hears when it is over.
func TestWatchDisk(t *testing.T) {
	var free atomic.Uint64
	free.Store(1 << 30)
	disk := nodehealth.NewDisk("/var/lib/cairn")
	disk.Statfs = func(path string, st *unix.Statfs_t) error {
		st.Bsize, st.Blocks, st.Bavail = 4096, 4<<30/4096, free.Load()/4096
		return nil
	}
	disk.Every = time.Millisecond
	n, con := testNode(t, http.NotFoundHandler())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { disk.Run(ctx); done <- struct{}{} }()
	go func() { n.WatchDisk(ctx, disk); done <- struct{}{} }()
	defer func() { cancel(); <-done; <-done }()

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

// TestHealthPart: the Kubernetes part of the node's health follows the
// phase, and the conditions are its problems.
func TestHealthPart(t *testing.T) {
	n, _ := testNode(t, http.NotFoundHandler())
	n.phase = ""
	p := n.Health()
	for _, tt := range []struct {
		do         func()
		want       nodehealth.State
		wantReason string
	}{
		{func() { n.setPhase(false, false) }, nodehealth.Starting, "waiting for node edge-1 to be Ready"},
		{func() { n.setPhase(true, false) }, nodehealth.OK, "node edge-1 is Ready"},
		{func() { n.setCondition("manifest a.yaml", "manifest a.yaml: bad") }, nodehealth.Degraded, "node edge-1 is Ready; manifest a.yaml: bad"},
		{func() { n.setPhase(false, true) }, nodehealth.Failed, "node edge-1 is not Ready; manifest a.yaml: bad"},
		{func() { n.clearCondition("manifest a.yaml"); n.setPhase(true, true) }, nodehealth.OK, "node edge-1 is Ready"},
		{func() { n.fail("cluster PKI in %s: %v", "/pki", "denied") }, nodehealth.Failed, "cluster PKI in /pki: denied"},
		{func() { n.setPhase(false, false) }, nodehealth.Failed, "cluster PKI in /pki: denied"},
	} {
		tt.do()
		if st := p.Status(); st.State != tt.want || st.Reason != tt.wantReason {
			t.Errorf("part %s %q, want %s %q", st.State, st.Reason, tt.want, tt.wantReason)
		}
	}
	if st := n.Status(context.Background()); st.Phase != "failed" || len(st.Problems) != 1 || st.Problems[0] != "cluster PKI in /pki: denied" {
		t.Errorf("status %+v: the event problem, as before", st)
	}
}
