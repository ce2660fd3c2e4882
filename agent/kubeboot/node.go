package kubeboot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/agent/atomicfile"
	"github.com/cairn-edge/cairn/agent/config"
	nodehealth "github.com/cairn-edge/cairn/agent/health"
	"github.com/cairn-edge/cairn/agent/kubepki"
	"github.com/cairn-edge/cairn/agent/services"
	"github.com/cairn-edge/cairn/agent/supervisor"
)

// Binary is cairn-kube in a slot.
const Binary = "/usr/bin/cairn-kube"

// criNamespace is containerd's namespace for the kubelet's containers.
const criNamespace = "k8s.io"

// Options are what a node needs from the agent.
type Options struct {
	Config config.Kubernetes
	// NodeName is the Kubernetes node name (the host name).
	NodeName string
	// NodeIP is the node's address in the cluster (stable: it is in
	// certificates and in the node object).
	NodeIP string
	// Containerd is containerd's socket.
	Containerd string
	// Log receives details; Say prints console contract lines.
	Log *slog.Logger
	Say func(format string, args ...any)
	// Output receives cairn-kube's own log.
	Output io.Writer
}

// Node runs the bundled Kubernetes of a server node.
type Node struct {
	opts Options
	kube *API

	// health holds the lasting problems and cairn-kube's runs (health.go).
	health health

	// agent is set in agent mode (agent.go).
	agent *agentState
	// csrSkipped are the kubelet-serving requests approveServing left
	// pending and logged (csr.go); the watch goroutine's alone.
	csrSkipped map[string]bool

	mu       sync.Mutex
	phase    string
	problems []string
}

// Start prepares the node (PKI, cairn-kube's configuration), then, in the
// background, imports the baked images and runs cairn-kube as one of
// host's processes until ctx ends. It returns the Node that reports the cluster's state.
func Start(ctx context.Context, host *supervisor.Host, opts Options) (*Node, error) {
	c := opts.Config.WithDefaults()
	opts.Config = c
	n := &Node{opts: opts}
	n.setPhase(false, false)
	if c.Mode == config.ModeAgent {
		return n.startAgent(ctx, host), nil
	}
	pkiDir := filepath.Join(DataDir, "pki")
	if _, err := n.renewPKI(pkiDir); err != nil {
		// Reported in status (phase failed) and on the console.
		n.fail("cluster PKI in %s: %v", pkiDir, err)
		return n, nil
	}
	confPath := filepath.Join(DataDir, "cairn-kube.json")
	if err := writeKubeConfig(confPath, opts, pkiDir); err != nil {
		return nil, err
	}
	client, err := kubepki.HTTPClient(pkiDir, "admin")
	if err != nil {
		return nil, err
	}
	n.kube = &API{URL: "https://127.0.0.1:6443", Client: client}

	go func() {
		// containerd may still be starting: the images wait for it, and
		// cairn-kube waits for the images (its pods need the pause image).
		if err := importImages(ctx, opts.Containerd); err != nil {
			n.problem("images: %v", err) // the pods using them will say so; the cluster still comes up
		}
		go n.watch(ctx)
		go n.watchPKI(ctx, pkiDir)
		last := &lastLines{}
		n.runKube(ctx, host, supervisor.Service{
			Name: "cairn-kube", Path: Binary, Args: []string{"server", "--config", confPath},
			Env: os.Environ(), Output: io.MultiWriter(&logSink{w: opts.Output, log: opts.Log}, last),
			Exited: func(e supervisor.Exit) { n.exited(e, last) },
		})
	}()
	return n, nil
}

// lastLines keeps the last lines written to it, to tell why a process
// ended.
type lastLines struct {
	mu  sync.Mutex
	buf []byte
}

func (l *lastLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	if len(l.buf) > 2048 {
		l.buf = l.buf[len(l.buf)-2048:]
	}
	return len(p), nil
}

// String is the last two lines.
func (l *lastLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(string(l.buf)), "\n")
	if len(lines) > 2 {
		lines = lines[len(lines)-2:]
	}
	return strings.Join(lines, " | ")
}

// writeKubeConfig writes cairn-kube's config file (agent/kube/README.md).
func writeKubeConfig(path string, opts Options, pkiDir string) error {
	c := opts.Config
	conf := map[string]any{
		"dataDir": DataDir, "certDir": pkiDir, "nodeName": opts.NodeName, "nodeIP": opts.NodeIP,
		"clusterCIDR": c.ClusterCIDR, "serviceCIDR": c.ServiceCIDR, "clusterDNS": c.ClusterDNS,
		"clusterDomain": c.ClusterDomain, "containerdSocket": opts.Containerd,
		"gcPercent": 25, "extraArgs": c.ExtraArgs,
	}
	data, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, data, 0o600)
}

// importImages imports every baked image into the kubelet's namespace.
func importImages(ctx context.Context, socket string) error {
	dirs, err := os.ReadDir(ImagesDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	// containerd.New can return before the daemon serves (a socket that
	// exists but still refuses, seen on a loaded box): wait until it answers.
	var c *containerd.Client
	for {
		if c, err = containerd.New(socket, containerd.WithTimeout(10*time.Second)); err == nil {
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			ok, _ := c.IsServing(sctx)
			cancel()
			if ok {
				break
			}
			c.Close()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	defer c.Close()
	ctx = namespaces.WithNamespace(ctx, criNamespace)
	var errs []error
	for _, d := range dirs {
		dir := filepath.Join(ImagesDir, d.Name())
		name, err := LayoutName(dir)
		if err == nil {
			_, err = services.ImportImage(ctx, c, name, dir, "overlayfs")
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// LayoutName is the image name an OCI layout's index gives its manifest
// (annotation org.opencontainers.image.ref.name).
func LayoutName(dir string) (string, error) {
	data, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return "", err
	}
	var idx struct {
		Manifests []struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(data, &idx); err != nil {
		return "", fmt.Errorf("%s/index.json: %w", dir, err)
	}
	for _, m := range idx.Manifests {
		if name := m.Annotations["org.opencontainers.image.ref.name"]; strings.Contains(name, ":") || strings.Contains(name, "/") {
			return name, nil
		}
	}
	return "", fmt.Errorf("%s/index.json names no image (org.opencontainers.image.ref.name)", dir)
}

// watch waits for the cluster, says so once, applies the manifests (see
// deploy.go: all of them whenever the cluster may have lost them, new and
// changed ones on every poll), approves agent-mode kubelets' serving
// certificate requests (csr.go), shows the datastore's records of a corrupt
// database it moved aside, and keeps the phase current.
func (n *Node) watch(ctx context.Context) {
	announced, wasReady := false, false
	d := &deployer{n: n}
	var deployedRun int64 = -1 // the cairn-kube run d last applied everything to
	for ctx.Err() == nil {
		ready := n.ready(ctx)
		n.setPhase(ready, announced)
		if ready && !announced {
			announced = true
			n.opts.Say("kubernetes ready node=%s", n.opts.NodeName)
		}
		if ready {
			run := n.health.runs.Load()
			d.deploy(ctx, !wasReady || run != deployedRun)
			deployedRun = run
			n.approveServing(ctx)
		}
		wasReady = ready
		n.datastoreRecords(filepath.Dir(datastorePath))
		select {
		case <-ctx.Done():
		case <-time.After(pollEvery(announced)):
		}
	}
}

func pollEvery(announced bool) time.Duration {
	if announced {
		return 15 * time.Second
	}
	return time.Second
}

// ready reports whether the API server is ready and the node Ready.
func (n *Node) ready(ctx context.Context) bool {
	if err := n.kube.Do(ctx, http.MethodGet, "/readyz", "", nil, nil); err != nil {
		return false
	}
	ok, _ := n.nodeReady(ctx)
	return ok
}

func (n *Node) nodeReady(ctx context.Context) (bool, error) {
	var node struct {
		Status struct {
			Conditions []struct{ Type, Status string } `json:"conditions"`
		} `json:"status"`
	}
	if err := n.kube.Do(ctx, http.MethodGet, "/api/v1/nodes/"+n.opts.NodeName, "", nil, &node); err != nil {
		return false, err
	}
	for _, c := range node.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == "True", nil
		}
	}
	return false, nil
}

// setPhase keeps the phase current: ready, or not ready once the node
// has been ready (before that it stays "starting"); the health part
// follows.
func (n *Node) setPhase(ready, announced bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case ready:
		n.phase = "ready"
	case announced:
		n.phase = "not ready"
	case n.phase == "":
		n.phase = "starting"
	}
	if n.phase != "failed" { // fail gave the part its verdict, with the reason
		n.Health().Set(phaseHealth(n.phase, n.opts.NodeName, ""))
	}
}

// phaseHealth is the health part's verdict on a phase; why is what keeps
// a failed node's Kubernetes from starting.
func phaseHealth(phase, nodeName, why string) (nodehealth.State, string) {
	switch phase {
	case "ready":
		return nodehealth.OK, "node " + nodeName + " is Ready"
	case "not ready":
		return nodehealth.Failed, "node " + nodeName + " is not Ready"
	case "failed":
		return nodehealth.Failed, why
	}
	return nodehealth.Starting, "waiting for node " + nodeName + " to be Ready"
}

// maxProblems is how many problems status keeps, the newest.
const maxProblems = 10

// problem records and shows something the user should fix, and notes
// it in the health model's history.
func (n *Node) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	n.opts.Say("warning: kubernetes: %s", msg)
	n.Health().Note(msg)
	n.mu.Lock()
	n.problems = append(n.problems, msg)
	if len(n.problems) > maxProblems {
		n.problems = n.problems[len(n.problems)-maxProblems:]
	}
	n.mu.Unlock()
}

// Status reports the cluster's state for the node API.
func (n *Node) Status(ctx context.Context) api.KubernetesStatus {
	n.mu.Lock()
	st := api.KubernetesStatus{Mode: n.opts.Config.Mode, Phase: n.phase, NodeName: n.opts.NodeName, Problems: append([]string(nil), n.problems...)}
	n.mu.Unlock()
	st.Problems = append(st.Problems, n.health.cond.list()...)
	if n.agent != nil {
		st.Server = n.agent.server
	}
	if n.kube == nil {
		return st // an agent without usable join credentials: the problems say why
	}
	var v struct {
		GitVersion string `json:"gitVersion"`
	}
	if err := n.kube.Do(ctx, http.MethodGet, "/version", "", nil, &v); err == nil {
		st.Version = v.GitVersion
	}
	st.NodeReady, _ = n.nodeReady(ctx)
	var pods struct {
		Items []struct {
			Status struct{ Phase string } `json:"status"`
		} `json:"items"`
	}
	if err := n.kube.Do(ctx, http.MethodGet, "/api/v1/pods?fieldSelector=spec.nodeName%3D"+n.opts.NodeName, "", nil, &pods); err == nil {
		for _, p := range pods.Items {
			st.Pods.Total++
			switch p.Status.Phase {
			case "Running":
				st.Pods.Running++
			case "Pending":
				st.Pods.Pending++
			case "Failed":
				st.Pods.Failed++
			}
		}
	}
	return st
}

// Kubeconfig is an administrator's kubeconfig for the API server at
// server (https://HOST:PORT, as the user reaches the node).
func (n *Node) Kubeconfig(server string) ([]byte, error) {
	if n.agent != nil {
		return nil, fmt.Errorf("%w: it joined %s with a node's credentials; get a kubeconfig from the control plane (cairn node --server SERVER-NODE kubeconfig)", api.ErrNoClusterAdmin, n.agent.server)
	}
	f, err := os.CreateTemp("", "kubeconfig-")
	if err != nil {
		return nil, err
	}
	f.Close()
	defer os.Remove(f.Name())
	if err := kubepki.WriteKubeconfig(f.Name(), server, filepath.Join(DataDir, "pki"), "admin"); err != nil {
		return nil, err
	}
	return os.ReadFile(f.Name())
}
