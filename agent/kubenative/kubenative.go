// Package kubenative runs a cairn-kube binary on this host, for tests and
// measurements: a control-plane-only server (no kubelet, no kube-proxy, so
// nothing touches the host's containers or firewall) in a private data
// directory, with a PKI from agent/kubepki, its API on loopback only.
//
//	n, err := kubenative.New(os.Getenv("CAIRN_TEST_KUBE_BIN"), t.TempDir(), kubenative.Tuning{})
//	err = n.Start()
//	took, err := n.WaitReady(2 * time.Minute)
//	resp, err := n.Client.Get(n.URL + "/api/v1/namespaces")
//	n.Kill()
package kubenative

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cairn-edge/cairn/agent/kubepki"
)

// Tuning is the memory tuning of the process (fields of the config file).
type Tuning struct {
	// MemoryLimitMiB is the Go soft memory limit; 0 for none.
	MemoryLimitMiB int
	// GCPercent is GOGC; 0 for Go's default.
	GCPercent int
}

// Node is one cairn-kube process and its state.
type Node struct {
	Bin    string
	Dir    string       // data directory; the PKI is Dir/pki, the log Dir/cairn-kube.log
	URL    string       // the API, https://127.0.0.1:<port>
	Client *http.Client // authenticates as cairn-admin (system:masters)
	cmd    *exec.Cmd
	exited chan error
}

// New prepares a node in dir: a PKI, a config file, a free loopback port.
func New(bin, dir string, tune Tuning) (*Node, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("cairn-kube binary: %w (build it with make kube)", err)
	}
	pkiDir := filepath.Join(dir, "pki")
	if err := kubepki.Ensure(pkiDir, kubepki.Options{NodeName: "cairn-native", NodeIPs: []string{"127.0.0.1"}}); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cfg := map[string]any{
		"dataDir":          dir,
		"nodeName":         "cairn-native",
		"apiPort":          port,
		"controlPlaneOnly": true,
		"memoryLimitMiB":   tune.MemoryLimitMiB,
		"gcPercent":        tune.GCPercent,
		"extraArgs":        map[string][]string{"kube-apiserver": {"--bind-address=127.0.0.1"}},
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o600); err != nil {
		return nil, err
	}
	client, err := kubepki.HTTPClient(pkiDir, "admin")
	if err != nil {
		return nil, err
	}
	return &Node{Bin: bin, Dir: dir, URL: fmt.Sprintf("https://127.0.0.1:%d", port), Client: client}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start starts the process, its output appended to Dir/cairn-kube.log.
func (n *Node) Start() error {
	logf, err := os.OpenFile(filepath.Join(n.Dir, "cairn-kube.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(n.Bin, "server", "--config", filepath.Join(n.Dir, "config.json"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	n.cmd = cmd
	n.exited = make(chan error, 1)
	go func() { n.exited <- cmd.Wait(); logf.Close() }()
	return nil
}

// Pid is the process's ID.
func (n *Node) Pid() int { return n.cmd.Process.Pid }

// WaitReady waits until /readyz answers 200 and returns how long it took
// since Start.
func (n *Node) WaitReady(timeout time.Duration) (time.Duration, error) {
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.URL+"/readyz", nil)
		resp, err := n.Client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(began), nil
			}
			err = fmt.Errorf("/readyz: %s", resp.Status)
		}
		last = err
		select {
		case err := <-n.exited:
			return 0, fmt.Errorf("cairn-kube exited (%v); see %s", err, n.Log())
		case <-ctx.Done():
			return 0, fmt.Errorf("not ready after %s: %v; see %s", timeout, last, n.Log())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Log is the path of the process's log.
func (n *Node) Log() string { return filepath.Join(n.Dir, "cairn-kube.log") }

// Kill kills the process (SIGKILL: a power cut, as far as the data
// directory can tell) and waits for it.
func (n *Node) Kill() {
	if n.cmd == nil {
		return
	}
	syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
	<-n.exited
	n.cmd = nil
}

// Stop sends SIGTERM and waits up to timeout for the process to exit.
func (n *Node) Stop(timeout time.Duration) error {
	if n.cmd == nil {
		return nil
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
		n.cmd = nil
		return nil
	case <-time.After(timeout):
		n.Kill()
		return fmt.Errorf("cairn-kube did not stop within %s of SIGTERM", timeout)
	}
}

// Memory is the process's resident memory: RSS and PSS (what it costs the
// system, shared pages divided among their users), in bytes.
type Memory struct{ RSS, PSS int64 }

// MemoryOf reads /proc/PID/smaps_rollup.
func MemoryOf(pid int) (Memory, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return Memory{}, err
	}
	var m Memory
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "Rss:":
			m.RSS = kb << 10
		case "Pss:":
			m.PSS = kb << 10
		}
	}
	return m, nil
}
