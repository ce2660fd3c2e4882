package services

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cairn-edge/cairn/agent/config"
	"github.com/cairn-edge/cairn/agent/supervisor"
)

// runtimeBin returns the directory holding cairn-agent (containerd's
// daemon is part of it), containerd's shim and runc (CAIRN_TEST_RUNTIME_BIN),
// or skips the test saying why.
func runtimeBin(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("integration test: needs root (it runs containerd and runc)")
	}
	bin := os.Getenv("CAIRN_TEST_RUNTIME_BIN")
	if bin == "" {
		t.Skip("integration test: set CAIRN_TEST_RUNTIME_BIN to a directory with cairn-agent, containerd-shim-runc-v2 and runc (make binaries runtime writes out/bin/linux-amd64)")
	}
	for _, b := range []string{"cairn-agent", "containerd-shim-runc-v2", "runc"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			t.Skipf("integration test: CAIRN_TEST_RUNTIME_BIN=%s lacks %s (%v)", bin, b, err)
		}
	}
	return bin
}

// testContainerd runs containerd — bin's cairn-agent started through a
// link named containerd, as in a slot — with Cairn's config.toml, moved
// into dir. start (re)starts it, stop kills it (shims live on).
type testContainerd struct {
	t        *testing.T
	bin, dir string
	cmd      *exec.Cmd
}

func (c *testContainerd) address() string { return filepath.Join(c.dir, "containerd.sock") }

func (c *testContainerd) start() {
	t := c.t
	t.Helper()
	conf, err := os.ReadFile("../runtime/config.toml")
	if err != nil {
		t.Fatal(err)
	}
	s := string(conf)
	for old, new := range map[string]string{
		"'/var/lib/containerd'":                   strconv.Quote(filepath.Join(c.dir, "root")),
		"'/run/containerd'":                       strconv.Quote(filepath.Join(c.dir, "state")),
		"'/run/containerd/containerd.sock'":       strconv.Quote(c.address()),
		"'/run/containerd/containerd.sock.ttrpc'": strconv.Quote(c.address() + ".ttrpc"),
		"'/usr/bin/runc'":                         strconv.Quote(filepath.Join(c.bin, "runc")),
	} {
		if !strings.Contains(s, old) {
			t.Fatalf("config.toml has no %s", old)
		}
		s = strings.ReplaceAll(s, old, new)
	}
	path := filepath.Join(c.dir, "config.toml")
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.OpenFile(filepath.Join(c.dir, "containerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	daemon := filepath.Join(c.dir, "containerd")
	if _, err := os.Lstat(daemon); err != nil {
		if err := os.Symlink(filepath.Join(c.bin, "cairn-agent"), daemon); err != nil {
			t.Fatal(err)
		}
	}
	c.cmd = exec.Command(daemon, "--config", path)
	c.cmd.Env = append(os.Environ(), "PATH="+c.bin+":"+os.Getenv("PATH"))
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if _, err := os.Stat(c.address()); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("containerd made no socket in 10 s; see %s", filepath.Join(c.dir, "containerd.log"))
}

func (c *testContainerd) stop() {
	if c.cmd == nil {
		return
	}
	c.cmd.Process.Kill()
	c.cmd.Wait()
	c.cmd = nil
	os.Remove(c.address())
}

// shims returns the PIDs of the shims run from c.bin.
func (c *testContainerd) shims() []int {
	want := filepath.Join(c.bin, "containerd-shim-runc-v2")
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); exe == want {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if bytes.Contains(cmdline, []byte(c.address())) {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

func rssKiB(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

// writeTestImage builds internal/testsvc and writes it as a one-layer OCI
// image in the layout dir.
func writeTestImage(t *testing.T, dir string) {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "testsvc")
	build := exec.Command("go", "build", "-trimpath", "-o", exe, "./internal/testsvc")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build testsvc: %v\n%s", err, out)
	}
	bin, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "testsvc", Mode: 0o755, Size: int64(len(bin)), Typeflag: tar.TypeReg})
	tw.Write(bin)
	tw.Close()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(buf.Bytes())), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	if img, err = mutate.Append(img, mutate.Addendum{Layer: layer}); err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", runtime.GOARCH
	cfg.Config = v1.Config{Entrypoint: []string{"/testsvc"}, Env: []string{"PATH=/"}}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		t.Fatal(err)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds or 30 s pass.
func waitFor(t *testing.T, what string, m *Manager, cond func(map[string]Status) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := map[string]Status{}
		for _, s := range m.List() {
			st[s.Name] = s
		}
		if cond(st) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 30 s; status: %+v", what, m.List())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestIntegration(t *testing.T) {
	bin := runtimeBin(t)
	dir, err := os.MkdirTemp("", "cairn-svc-") // short: socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	ctrd := &testContainerd{t: t, bin: bin, dir: dir}
	t.Cleanup(func() {
		ctrd.stop()
		for _, pid := range ctrd.shims() {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		exec.Command("umount", "-R", filepath.Join(dir, "state")).Run()
		if !t.Failed() {
			os.RemoveAll(dir)
		} else {
			t.Logf("kept %s (containerd.log, log/)", dir)
		}
	})
	ctrd.start()

	images := filepath.Join(dir, "images")
	for _, name := range []string{"base", "web", "crashy", "oneshot"} {
		writeTestImage(t, filepath.Join(images, name))
	}
	svcs := []config.Service{
		// Listed out of order on purpose: web needs base.
		{Name: "web", Image: "test.invalid/web:1", DependsOn: []string{"base"}, Env: map[string]string{"SVC": "web", "LISTEN": "8080"}, Ready: config.Ready{TCP: 8080, Timeout: 20 * time.Second}},
		{Name: "base", Image: "test.invalid/base:1", Env: map[string]string{"SVC": "base"}, Ready: config.Ready{Notify: true, Timeout: 20 * time.Second},
			Mounts: []config.Mount{{Source: dir, Target: "/host", Options: []string{"ro"}}}, Capabilities: []string{"NET_ADMIN"}},
		{Name: "crashy", Image: "test.invalid/crashy:1", Env: map[string]string{"SVC": "crashy", "EXIT_CODE": "3"}, Restart: config.RestartOnFailure},
		{Name: "oneshot", Image: "test.invalid/oneshot:1", Env: map[string]string{"SVC": "oneshot", "EXIT_CODE": "0"}, Restart: config.RestartOnFailure, HostNetwork: true},
	}
	m, err := NewManager(svcs, Options{
		Address:     ctrd.address(),
		ImagesDir:   images,
		LogDir:      filepath.Join(dir, "log"),
		RunDir:      filepath.Join(dir, "run"),
		Backoff:     supervisor.Backoff{Min: 200 * time.Millisecond, Max: 2 * time.Second},
		StopTimeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	started := time.Now()
	if err := m.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("Start: every service ready in %s (image imports included)", time.Since(started).Round(time.Millisecond))
	defer m.Stop(context.Background())

	t.Run("order and readiness", func(t *testing.T) {
		var got []string
		for _, s := range m.List() {
			got = append(got, s.Name)
		}
		if strings.Join(got, ",") != "base,web,crashy,oneshot" {
			t.Errorf("List order %v, want base first (web depends on it)", got)
		}
		waitFor(t, "base and web ready", m, func(st map[string]Status) bool {
			return st["base"].Ready && st["web"].Ready && st["base"].State == StateRunning
		})
		logs := readAll(t, m, "base")
		if !strings.Contains(logs, "sd_notify READY=1 sent=true") {
			t.Errorf("base's log lacks its sd_notify; log:\n%s", logs)
		}
		if web := readAll(t, m, "web"); !strings.Contains(web, "listening on 127.0.0.1:8080") {
			t.Errorf("web's log:\n%s", web)
		}
	})

	t.Run("crash loop is visible", func(t *testing.T) {
		waitFor(t, "crashy restarted twice", m, func(st map[string]Status) bool {
			c := st["crashy"]
			return c.Restarts >= 2 && c.LastExit != nil && c.LastExit.Code == 3
		})
		if logs := readAll(t, m, "crashy"); !strings.Contains(logs, "testsvc: exiting with 3") {
			t.Errorf("crashy's stderr not in its log:\n%s", logs)
		}
	})

	t.Run("on-failure leaves a clean exit down", func(t *testing.T) {
		waitFor(t, "oneshot exited", m, func(st map[string]Status) bool {
			o := st["oneshot"]
			return o.State == StateExited && o.LastExit != nil && o.LastExit.Code == 0 && o.Restarts == 0
		})
	})

	t.Run("killed process is restarted", func(t *testing.T) {
		before := status(m, "base")
		if err := syscall.Kill(int(before.PID), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "base back", m, func(st map[string]Status) bool {
			b := st["base"]
			return b.Restarts == before.Restarts+1 && b.Ready && b.PID != before.PID && b.LastExit != nil && b.LastExit.Code == 137
		})
	})

	t.Run("logs follow and file", func(t *testing.T) {
		rc, err := m.Logs("base", true, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		kept := len(readAll(t, m, "base"))
		got := make(chan int)
		go func() {
			b := make([]byte, 64<<10)
			n := 0
			for {
				k, err := rc.Read(b)
				n += k
				if err != nil || n > kept+20 {
					got <- n
					return
				}
			}
		}()
		select {
		case <-got:
		case <-time.After(10 * time.Second):
			t.Error("following base's log saw no new output in 10 s")
		}
		file, err := os.ReadFile(filepath.Join(dir, "log", "base.log"))
		if err != nil || !bytes.Contains(file, []byte("testsvc base starting")) {
			t.Errorf("log file: %v\n%.300s", err, file)
		}
	})

	t.Run("survives containerd restart", func(t *testing.T) {
		before := status(m, "web")
		ctrd.stop()
		time.Sleep(500 * time.Millisecond)
		if st := status(m, "web"); st.State != StateRunning || st.PID != before.PID {
			t.Errorf("with containerd down, web: %+v, want running as pid %d", st, before.PID)
		}
		ctrd.start()
		time.Sleep(time.Second)
		if st := status(m, "web"); st.State != StateRunning || st.PID != before.PID {
			t.Errorf("after containerd restart, web: %+v, want running as pid %d", st, before.PID)
		}
		// The Manager waits on the task again: a crash is still seen.
		syscall.Kill(int(before.PID), syscall.SIGKILL)
		waitFor(t, "web back after crash", m, func(st map[string]Status) bool {
			w := st["web"]
			return w.Ready && w.PID != before.PID && w.Restarts == before.Restarts+1
		})
	})

	t.Run("restart on request", func(t *testing.T) {
		before := status(m, "base")
		if err := m.Restart("base"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "base restarted", m, func(st map[string]Status) bool {
			b := st["base"]
			return b.Ready && b.PID != before.PID
		})
		if err := m.Restart("nope"); !errors.Is(err, ErrUnknown) {
			t.Errorf("Restart(nope) = %v", err)
		}
		if err := m.Restart("oneshot"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "oneshot ran again", m, func(st map[string]Status) bool {
			return st["oneshot"].Restarts == 1 && st["oneshot"].State == StateExited
		})
		time.Sleep(time.Second)
		if o := status(m, "oneshot"); o.Restarts != 1 || o.State != StateExited {
			t.Errorf("oneshot after one Restart: %+v, want it run exactly once more", o)
		}
	})

	t.Run("memory", func(t *testing.T) {
		// Let crashy be and measure at rest.
		time.Sleep(3 * time.Second)
		shims := ctrd.shims()
		total := 0
		for _, pid := range shims {
			total += rssKiB(pid)
		}
		t.Logf("idle RSS: containerd %d KiB; %d shims %d KiB (%d KiB each on average)",
			rssKiB(ctrd.cmd.Process.Pid), len(shims), total, total/max(len(shims), 1))
	})

	if err := m.Stop(context.Background()); err != nil {
		t.Errorf("Stop: %v", err)
	}
	for _, s := range m.List() {
		if s.State != StateStopped {
			t.Errorf("after Stop, %s is %s", s.Name, s.State)
		}
	}
}

func status(m *Manager, name string) Status {
	for _, s := range m.List() {
		if s.Name == name {
			return s
		}
	}
	return Status{}
}

func readAll(t *testing.T, m *Manager, name string) string {
	t.Helper()
	rc, err := m.Logs(name, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}
