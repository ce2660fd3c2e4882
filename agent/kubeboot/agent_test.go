package kubeboot

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/agent/config"
	"github.com/cairn-edge/cairn/agent/kubenative"
	"github.com/cairn-edge/cairn/agent/kubepki"
)

// testPKI is a cluster PKI in a temporary directory.
func testPKI(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := kubepki.Ensure(dir, kubepki.Options{NodeName: "server-1", NodeIPs: []string{"127.0.0.1"}}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func mint(t *testing.T, pkiDir, server, node string) []byte {
	t.Helper()
	kc, err := kubepki.JoinKubeconfig(pkiDir, server, node, kubepki.JoinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return kc
}

// asNode is a client of the control plane cp with the credentials of a
// join kubeconfig minted for node.
func asNode(t *testing.T, cp *kubenative.Node, node string) *API {
	t.Helper()
	j, err := parseJoin(mint(t, filepath.Join(cp.Dir, "pki"), cp.URL, node), "")
	if err != nil {
		t.Fatal(err)
	}
	client, err := j.httpClient()
	if err != nil {
		t.Fatal(err)
	}
	return &API{URL: cp.URL, Client: client}
}

func TestParseJoin(t *testing.T) {
	pkiDir := testPKI(t)
	minted := mint(t, pkiDir, "https://10.0.0.1:6443", "edge-2")
	ca, _ := os.ReadFile(filepath.Join(pkiDir, "ca.crt"))
	b64 := base64.StdEncoding.EncodeToString
	// files: a kubeconfig that names its CA and token by (relative) path.
	files := t.TempDir()
	os.WriteFile(filepath.Join(files, "ca.crt"), ca, 0o644)
	os.WriteFile(filepath.Join(files, "token"), []byte("abc.def\n"), 0o600)
	withToken := func(user string) string {
		return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://k8s.example:6443", certificate-authority-data: %s}
users:
- name: u
  user: %s
contexts:
- name: x
  context: {cluster: c, user: u}
`, b64(ca), user)
	}
	tests := []struct {
		name       string
		doc        string
		wantServer string
		wantNode   string
		wantToken  string
		wantErr    string
	}{
		{name: "minted by a server", doc: string(minted), wantServer: "https://10.0.0.1:6443", wantNode: "edge-2"},
		{name: "token, the only context", doc: withToken("{token: abc.def}"), wantServer: "https://k8s.example:6443", wantToken: "abc.def"},
		{name: "files relative to the kubeconfig", doc: `apiVersion: v1
clusters: [{name: c, cluster: {server: "https://k:6443", certificate-authority: ca.crt}}]
users: [{name: u, user: {tokenFile: token}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`, wantServer: "https://k:6443", wantToken: "abc.def"},
		{name: "exec plugin", doc: withToken("{exec: {command: aws}}"), wantErr: "authenticates with a plugin"},
		{name: "no credentials", doc: withToken("{username: admin}"), wantErr: "neither a client certificate nor a token"},
		{name: "no CA", doc: strings.Replace(withToken("{token: t}"), "certificate-authority-data: "+b64(ca), "insecure-skip-tls-verify: true", 1), wantErr: "has no certificate-authority-data"},
		{name: "CA not PEM", doc: strings.Replace(withToken("{token: t}"), b64(ca), b64([]byte("nope")), 1), wantErr: "holds no PEM certificate"},
		{name: "unknown current context", doc: withToken("{token: t}") + "current-context: y\n", wantErr: `no context "y"`},
		{name: "missing file", doc: strings.Replace(withToken("{token: t}"), "certificate-authority-data: "+b64(ca), "certificate-authority: /nonexistent/ca.crt", 1), wantErr: "embed it as certificate-authority-data"},
		{name: "not YAML", doc: "clusters: [", wantErr: "not a kubeconfig"},
		{name: "empty", doc: "", wantErr: `no context ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j, err := parseJoin([]byte(tt.doc), files)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if j.server != tt.wantServer || j.nodeName != tt.wantNode || j.token != tt.wantToken {
				t.Errorf("server %q node %q token %q, want %q %q %q", j.server, j.nodeName, j.token, tt.wantServer, tt.wantNode, tt.wantToken)
			}
			if tt.wantNode != "" && time.Until(j.notAfter) < 300*24*time.Hour {
				t.Errorf("certificate expires %s, want in a year", j.notAfter)
			}
		})
	}
}

// TestWriteJoin writes the node's credentials for another server URL
// than the kubeconfig's, and reads them back.
func TestWriteJoin(t *testing.T) {
	pkiDir := testPKI(t)
	j, err := parseJoin(mint(t, pkiDir, "https://old:6443", "edge-2"), "")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "join")
	kc := filepath.Join(dir, "kubeconfig")
	if err := writeJoin(dir, kc, "https://10.0.0.1:6443", j); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(kc)
	back, err := parseJoin(data, dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if back.server != "https://10.0.0.1:6443" || back.nodeName != "edge-2" || back.tlsServerName != "kubernetes" || string(back.caPEM) != string(j.caPEM) {
		t.Errorf("read back: server %q node %q tls-server-name %q", back.server, back.nodeName, back.tlsServerName)
	}
	ca, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if string(ca) != string(j.caPEM) {
		t.Errorf("ca.crt is not the join's CA")
	}
	if st, _ := os.Stat(kc); st.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig mode %v, want 0600", st.Mode().Perm())
	}
}

func TestAgentConfig(t *testing.T) {
	opts := Options{Config: config.Kubernetes{Mode: config.ModeAgent, Server: "https://10.0.0.1:6443", ExtraArgs: map[string][]string{"kubelet": {"--max-pods=20"}}}.WithDefaults(),
		NodeName: "edge-2", Containerd: "/run/containerd/containerd.sock"}
	got := agentConfig(opts, "192.168.1.20", "/var/lib/cairn/kube/join/kubeconfig")
	for k, want := range map[string]any{
		"server": "https://10.0.0.1:6443", "kubeconfig": "/var/lib/cairn/kube/join/kubeconfig", "nodeName": "edge-2",
		"nodeIP": "192.168.1.20", "certDir": "/var/lib/cairn/kube/join", "clusterCIDR": "10.42.0.0/16", "clusterDNS": "10.43.0.10",
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	if _, ok := got["controlPlaneOnly"]; ok {
		t.Error("agent config has controlPlaneOnly")
	}
}

func TestNodeIPFor(t *testing.T) {
	defer func(d func(context.Context, string) (net.Addr, error)) { dialUDP = d }(dialUDP)
	tests := []struct {
		name, server string
		local        net.Addr
		dialErr      error
		want         string
		wantAddr     string // what is dialled
		wantErr      string
	}{
		{"route", "https://10.0.0.1:6443", &net.UDPAddr{IP: net.ParseIP("192.168.1.20")}, nil, "192.168.1.20", "10.0.0.1:6443", ""},
		{"default port", "https://k8s.example", &net.UDPAddr{IP: net.ParseIP("192.168.1.20")}, nil, "192.168.1.20", "k8s.example:443", ""},
		{"IPv6", "https://[fd00::1]:6443", &net.UDPAddr{IP: net.ParseIP("fd00::20")}, nil, "fd00::20", "[fd00::1]:6443", ""},
		{"only the fallback route", "https://10.0.0.1:6443", &net.UDPAddr{IP: net.ParseIP("10.254.0.1")}, nil, "", "10.0.0.1:6443", "is the network up?"},
		{"loopback", "https://127.0.0.1:6443", &net.UDPAddr{IP: net.ParseIP("127.0.0.1")}, nil, "", "127.0.0.1:6443", "is the network up?"},
		{"no route", "https://10.0.0.1:6443", nil, errors.New("connect: network is unreachable"), "", "10.0.0.1:6443", "network is unreachable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var dialled string
			dialUDP = func(_ context.Context, addr string) (net.Addr, error) { dialled = addr; return tt.local, tt.dialErr }
			got, err := nodeIPFor(context.Background(), tt.server, "10.254.0.1")
			if dialled != tt.wantAddr {
				t.Errorf("dialled %q, want %q", dialled, tt.wantAddr)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("nodeIPFor = %q, %v, want %q", got, err, tt.want)
			}
		})
	}
}

func TestJoinProblem(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"unauthorized", &StatusError{Code: 401, Message: "Unauthorized"}, "refused the join credentials (401 Unauthorized"},
		{"forbidden", &StatusError{Code: 403, Message: `nodes "edge-2" is forbidden`}, "must be a client certificate for system:node:edge-2"},
		{"other answer", &StatusError{Code: 500, Message: "etcd"}, "answers 500: etcd"},
		{"refused", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, "cannot reach the control plane at https://s:6443: dial tcp: connection refused (check kubernetes.server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := joinProblem(tt.err, "https://s:6443", "edge-2"); !strings.Contains(got, tt.want) {
				t.Errorf("joinProblem = %q, want %q in it", got, tt.want)
			}
		})
	}
}

// console collects what a node says.
type console struct {
	mu    sync.Mutex
	lines []string
}

func (c *console) say(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines = append(c.lines, fmt.Sprintf(format, args...))
}

func (c *console) count(substr string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, l := range c.lines {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

func agentNode(t *testing.T, server string) (*Node, *console) {
	t.Helper()
	con := &console{}
	n := &Node{phase: "starting", opts: Options{
		Config: config.Kubernetes{Mode: config.ModeAgent, Server: server}.WithDefaults(), NodeName: "cairn-0a1b2c",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Say: con.say, Output: io.Discard,
	}}
	return n, con
}

// TestStartAgentCannotJoin: without a usable join kubeconfig the node is
// still there, failed, and says what to do, on the console and in status.
func TestStartAgentCannotJoin(t *testing.T) {
	defer func(p []string) { joinPaths = p }(joinPaths)
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.kubeconfig")
	os.WriteFile(broken, []byte("apiVersion: v1\nkind: Config\n"), 0o600)
	tests := []struct {
		name  string
		paths []string
		want  string
	}{
		{"none", []string{filepath.Join(dir, "esp.kubeconfig"), filepath.Join(dir, "slot.kubeconfig")}, "agent mode needs a join kubeconfig, and there is none at " + NodeJoinKubeconfig},
		{"broken", []string{filepath.Join(dir, "esp.kubeconfig"), broken}, "join kubeconfig " + broken + `: no context ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			joinPaths = tt.paths
			n, con := agentNode(t, "https://10.0.0.1:6443")
			n.startAgent(context.Background(), nil)
			st := n.Status(context.Background())
			if st.Mode != config.ModeAgent || st.Phase != "failed" || st.Server != "https://10.0.0.1:6443" || len(st.Problems) != 1 || !strings.Contains(st.Problems[0], tt.want) {
				t.Errorf("status = %+v, want failed with a problem containing %q", st, tt.want)
			}
			if con.count("warning: kubernetes: "+tt.want) != 1 {
				t.Errorf("console = %q, want the problem once", con.lines)
			}
			if _, err := n.Kubeconfig("https://x:6443"); !errors.Is(err, api.ErrNoClusterAdmin) {
				t.Errorf("Kubeconfig: %v, want ErrNoClusterAdmin", err)
			}
			if _, err := n.JoinKubeconfig("edge-3", "https://x:6443"); !errors.Is(err, api.ErrNoClusterAdmin) {
				t.Errorf("JoinKubeconfig: %v, want ErrNoClusterAdmin", err)
			}
		})
	}
}

// TestWatchAgentUnreachable: a control plane out of reach is a problem,
// said once however long it lasts.
func TestWatchAgentUnreachable(t *testing.T) {
	defer func(d time.Duration) { unreachableAfter = d }(unreachableAfter)
	unreachableAfter = 0
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	server := "https://" + ln.Addr().String()
	ln.Close()
	n, con := agentNode(t, server)
	n.agent = &agentState{server: server}
	n.kube = &API{URL: server, Client: &http.Client{Timeout: time.Second}}
	ctx, cancel := context.WithTimeout(context.Background(), 3500*time.Millisecond)
	defer cancel()
	n.watchAgent(ctx)
	if got := con.count("warning: kubernetes: cannot reach the control plane at " + server); got != 1 {
		t.Errorf("console = %q, want the problem once", con.lines)
	}
	if st := n.Status(context.Background()); st.Phase != "starting" || len(st.Problems) != 1 {
		t.Errorf("status = %+v", st)
	}
}

// TestAgentJoinsRealAPIServer checks the join credentials against a real
// control plane (CAIRN_TEST_KUBE_BIN): a minted kubeconfig registers its
// node, may act as kube-proxy once the server applied NodeProxier, may not
// touch another node, and the node's readiness is announced once.
func TestAgentJoinsRealAPIServer(t *testing.T) {
	cp, admin := realControlPlane(t)
	ctx := context.Background()
	node := asNode(t, cp, "edge-2")
	nodeObj := func(name string) []byte {
		b, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "Node", "metadata": map[string]any{"name": name}})
		return b
	}
	if err := node.Do(ctx, http.MethodPost, "/api/v1/nodes", "application/json", nodeObj("edge-2"), nil); err != nil {
		t.Fatalf("registering its own node: %v", err)
	}
	if err := node.Do(ctx, http.MethodPost, "/api/v1/nodes", "application/json", nodeObj("edge-3"), nil); err == nil {
		t.Error("the node's credentials registered another node")
	}
	slices := "/apis/discovery.k8s.io/v1/endpointslices"
	if err := node.Do(ctx, http.MethodGet, slices, "", nil, nil); !isRefusal(err) {
		t.Errorf("listing EndpointSlices before NodeProxier: %v, want 403", err)
	}
	objs, err := ParseManifest(NodeProxier)
	if err != nil {
		t.Fatal(err)
	}
	if errs := admin.ApplyAll(ctx, objs); len(errs) > 0 {
		t.Fatal(errs)
	}
	waitUntil(t, "EndpointSlices readable as kube-proxy", func() error { return node.Do(ctx, http.MethodGet, slices, "", nil, nil) })

	// Readiness as the node's credentials see it: said once.
	n, con := agentNode(t, cp.URL)
	n.opts.NodeName = "edge-2"
	n.agent = &agentState{server: cp.URL}
	n.kube = node
	status := `{"status":{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady","lastHeartbeatTime":"2026-01-01T00:00:00Z","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}`
	if err := node.Do(ctx, http.MethodPatch, "/api/v1/nodes/edge-2/status", "application/merge-patch+json", []byte(status), nil); err != nil {
		t.Fatalf("node status: %v", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	n.watchAgent(wctx)
	if con.count("kubernetes ready node=edge-2") != 1 {
		t.Errorf("console = %q, want kubernetes ready once", con.lines)
	}
	if st := n.Status(ctx); st.Phase != "ready" || !st.NodeReady || !strings.HasPrefix(st.Version, "v1.") || len(st.Problems) != 0 {
		t.Errorf("status = %+v", st)
	}
}

func waitUntil(t *testing.T, what string, f func() error) {
	t.Helper()
	var err error
	for start := time.Now(); time.Since(start) < 30*time.Second; time.Sleep(200 * time.Millisecond) {
		if err = f(); err == nil {
			return
		}
	}
	t.Fatalf("no %s: %v", what, err)
}

// A minted kubeconfig against an httptest server that is not the
// cluster's: its certificate names neither "kubernetes" nor is it signed
// by the cluster's CA.
func TestJoinProblemUnknownCA(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	j, err := parseJoin(mint(t, testPKI(t), srv.URL, "edge-2"), "")
	if err != nil {
		t.Fatal(err)
	}
	client, _ := j.httpClient()
	a := &API{URL: srv.URL, Client: client}
	err = a.Do(context.Background(), http.MethodGet, "/version", "", nil, nil)
	if got := joinProblem(err, srv.URL, "edge-2"); !strings.Contains(got, "is kubernetes.server this cluster's API server?") {
		t.Errorf("joinProblem(%v) = %q", err, got)
	}
}
