package kubeboot

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cairn-edge/cairn/agent/atomicfile"
	"github.com/cairn-edge/cairn/agent/supervisor"
	"gopkg.in/yaml.v3"
)

// Agent mode: the node joins a control plane elsewhere and runs only the
// kubelet and kube-proxy (`cairn-kube agent`). It holds no cluster PKI:
// its credentials are the join kubeconfig, and its state is the kubelet's.

// joinDir holds what agent mode derives from the join kubeconfig: the
// cluster CA (ca.crt, which the kubelet trusts for the API server's calls)
// and the kubeconfig cairn-kube runs the kubelet and kube-proxy with.
var joinDir = filepath.Join(DataDir, "join")

// joinPaths are where a join kubeconfig is looked for, the first found
// wins: the node's own on the ESP, then the one baked from the spec.
var joinPaths = []string{NodeJoinKubeconfig, JoinKubeconfig}

// unreachableAfter is how long the control plane may be out of reach
// before the node reports it as a problem (a booting node's network may
// take a while).
var unreachableAfter = 45 * time.Second

// renewWarning is how long before the join certificate expires the node
// starts to warn.
const renewWarning = 30 * 24 * time.Hour

// agentState is what a node in agent mode knows besides Node's fields.
type agentState struct {
	// server is the API server the node joins.
	server string
}

// Lasting problems of an agent (conditions, see health.go).
const (
	condControlPlane = "control plane"
	condNodeAddress  = "node address"
)

// startAgent is Start for agent mode: it reads the join kubeconfig and, in
// the background, imports the baked images, finds the node's address and
// runs `cairn-kube agent` as one of host's processes. A node that cannot
// join (no join kubeconfig, a broken one) is still returned: its status
// and the console say what to fix.
func (n *Node) startAgent(ctx context.Context, host *supervisor.Host) *Node {
	c := n.opts.Config
	n.agent = &agentState{server: c.Server}
	path := findJoin()
	if path == "" {
		n.fail("agent mode needs a join kubeconfig, and there is none at %s or %s: mint one on a server node (cairn node join-kubeconfig --node NAME --kube-server %s) and copy it to this node's ESP as %s, then reboot",
			NodeJoinKubeconfig, JoinKubeconfig, c.Server, filepath.Base(NodeJoinKubeconfig))
		return n
	}
	data, err := os.ReadFile(path)
	if err != nil {
		n.fail("join kubeconfig %s: %v", path, err)
		return n
	}
	j, err := parseJoin(data, filepath.Dir(path))
	if err != nil {
		n.fail("join kubeconfig %s: %v", path, err)
		return n
	}
	if j.nodeName != "" && j.nodeName != n.opts.NodeName {
		// The API server lets a node's credentials act only on the node
		// they name: that is the node's name, whatever the host is called.
		n.opts.Log.Info("node name from the join credentials", "node", j.nodeName, "hostname", n.opts.NodeName)
		n.opts.NodeName = j.nodeName
		n.setPhase(false, false) // the health part names the node
	}
	if !j.notAfter.IsZero() && time.Until(j.notAfter) < renewWarning {
		n.problem("the join certificate in %s expires on %s: mint a new one (cairn node join-kubeconfig --node %s) and replace the file", path, j.notAfter.Format(time.DateOnly), n.opts.NodeName)
	}
	if j.server != "" && j.server != c.Server {
		n.opts.Log.Info("the join kubeconfig names another server; joining the spec's", "kubeconfig", j.server, "server", c.Server)
	}
	client, err := j.httpClient()
	if err != nil {
		n.fail("join kubeconfig %s: %v", path, err)
		return n
	}
	n.kube = &API{URL: strings.TrimSuffix(c.Server, "/"), Client: client}
	kubeconfig := filepath.Join(joinDir, "kubeconfig")
	if err := writeJoin(joinDir, kubeconfig, c.Server, j); err != nil {
		n.fail("writing the node's credentials: %v", err)
		return n
	}
	n.opts.Log.Info("joining", "server", c.Server, "node", n.opts.NodeName, "from", path)

	go func() {
		if err := importImages(ctx, n.opts.Containerd); err != nil {
			n.problem("images: %v", err)
		}
		go n.watchAgent(ctx)
		ip, err := n.waitNodeIP(ctx, c.Server)
		if err != nil {
			return // ctx ended
		}
		confPath := filepath.Join(DataDir, "cairn-kube.json")
		if err := writeAgentConfig(confPath, n.opts, ip, kubeconfig); err != nil {
			n.fail("cairn-kube's config: %v", err)
			return
		}
		last := &lastLines{}
		n.runKube(ctx, host, supervisor.Service{
			Name: "cairn-kube", Path: Binary, Args: []string{"agent", "--config", confPath},
			Env: os.Environ(), Output: io.MultiWriter(&logSink{w: n.opts.Output, log: n.opts.Log}, last),
			Exited: func(e supervisor.Exit) { n.exited(e, last) },
		})
	}()
	return n
}

// fail records a problem that keeps the node's Kubernetes from starting
// (no join kubeconfig, no cluster PKI): phase failed, the problem in status
// and on the console.
func (n *Node) fail(format string, args ...any) {
	n.mu.Lock()
	n.phase = "failed"
	n.Health().Set(phaseHealth(n.phase, n.opts.NodeName, fmt.Sprintf(format, args...)))
	n.mu.Unlock()
	n.problem(format, args...)
}

// findJoin is the first join kubeconfig of joinPaths that exists, or "".
func findJoin() string {
	for _, p := range joinPaths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// join is what a join kubeconfig holds, for its current context.
type join struct {
	// server is the kubeconfig's own server URL.
	server string
	// tlsServerName is the name to expect in the API server's certificate,
	// when not the server URL's host.
	tlsServerName string
	// caPEM is the cluster's CA certificate.
	caPEM []byte
	// certPEM and keyPEM are the user's client certificate, if it has one.
	certPEM, keyPEM []byte
	// token is the user's bearer token, if it has one.
	token string
	// nodeName is the node the client certificate is for (its CN is
	// system:node:NAME), or "".
	nodeName string
	// notAfter is when the client certificate expires (zero without one).
	notAfter time.Time
}

// kubeconfigDoc is the part of a kubeconfig file a join needs.
type kubeconfigDoc struct {
	Clusters []struct {
		Name    string `json:"name"`
		Cluster struct {
			Server        string `json:"server"`
			CA            string `json:"certificate-authority"`
			CAData        []byte `json:"certificate-authority-data"`
			TLSServerName string `json:"tls-server-name"`
		} `json:"cluster"`
	} `json:"clusters"`
	Users []struct {
		Name string `json:"name"`
		User struct {
			Cert      string `json:"client-certificate"`
			CertData  []byte `json:"client-certificate-data"`
			Key       string `json:"client-key"`
			KeyData   []byte `json:"client-key-data"`
			Token     string `json:"token"`
			TokenFile string `json:"tokenFile"`
			Exec      any    `json:"exec"`
			Auth      any    `json:"auth-provider"`
		} `json:"user"`
	} `json:"users"`
	Contexts []struct {
		Name    string `json:"name"`
		Context struct {
			Cluster string `json:"cluster"`
			User    string `json:"user"`
		} `json:"context"`
	} `json:"contexts"`
	CurrentContext string `json:"current-context"`
}

// parseJoin reads a join kubeconfig: its current context (or its only
// one), that context's cluster and user. Files it names are read relative
// to dir, as kubectl does; the result holds their content.
func parseJoin(data []byte, dir string) (*join, error) {
	var doc kubeconfigDoc
	if err := decodeYAML(data, &doc); err != nil {
		return nil, fmt.Errorf("not a kubeconfig: %v", err)
	}
	ctxName := doc.CurrentContext
	if ctxName == "" && len(doc.Contexts) == 1 {
		ctxName = doc.Contexts[0].Name
	}
	var clusterName, userName string
	found := false
	for _, c := range doc.Contexts {
		if c.Name == ctxName {
			clusterName, userName, found = c.Context.Cluster, c.Context.User, true
		}
	}
	if !found {
		return nil, fmt.Errorf("no context %q (set current-context to one of its contexts)", ctxName)
	}
	read := func(what, path string) ([]byte, error) {
		if !filepath.IsAbs(path) {
			path = filepath.Join(dir, path)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %v (embed it as %s-data)", what, err, what)
		}
		return b, nil
	}
	j := &join{}
	var err error
	found = false
	for _, c := range doc.Clusters {
		if c.Name != clusterName {
			continue
		}
		found = true
		j.server, j.tlsServerName, j.caPEM = c.Cluster.Server, c.Cluster.TLSServerName, c.Cluster.CAData
		if len(j.caPEM) == 0 && c.Cluster.CA != "" {
			if j.caPEM, err = read("certificate-authority", c.Cluster.CA); err != nil {
				return nil, err
			}
		}
	}
	if !found {
		return nil, fmt.Errorf("context %q names cluster %q, which is not in clusters", ctxName, clusterName)
	}
	if len(j.caPEM) == 0 {
		return nil, fmt.Errorf("cluster %q has no certificate-authority-data: add the cluster's CA (the kubelet trusts it for the API server's calls)", clusterName)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(j.caPEM) {
		return nil, fmt.Errorf("cluster %q: certificate-authority-data holds no PEM certificate", clusterName)
	}
	found = false
	for _, u := range doc.Users {
		if u.Name != userName {
			continue
		}
		found = true
		us := u.User
		if us.Exec != nil || us.Auth != nil {
			return nil, fmt.Errorf("user %q authenticates with a plugin (exec or auth-provider), which a node cannot run: use a client certificate or a token", userName)
		}
		j.certPEM, j.keyPEM, j.token = us.CertData, us.KeyData, us.Token
		if len(j.certPEM) == 0 && us.Cert != "" {
			if j.certPEM, err = read("client-certificate", us.Cert); err != nil {
				return nil, err
			}
		}
		if len(j.keyPEM) == 0 && us.Key != "" {
			if j.keyPEM, err = read("client-key", us.Key); err != nil {
				return nil, err
			}
		}
		if j.token == "" && us.TokenFile != "" {
			b, err := read("token", us.TokenFile)
			if err != nil {
				return nil, err
			}
			j.token = strings.TrimSpace(string(b))
		}
	}
	if !found {
		return nil, fmt.Errorf("context %q names user %q, which is not in users", ctxName, userName)
	}
	if len(j.certPEM) == 0 && j.token == "" {
		return nil, fmt.Errorf("user %q has neither a client certificate nor a token: mint a join kubeconfig with cairn node join-kubeconfig", userName)
	}
	if len(j.certPEM) > 0 {
		pair, err := tls.X509KeyPair(j.certPEM, j.keyPEM)
		if err != nil {
			return nil, fmt.Errorf("user %q: client certificate and key: %v", userName, err)
		}
		cert, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			return nil, fmt.Errorf("user %q: client certificate: %v", userName, err)
		}
		j.notAfter = cert.NotAfter
		if name, ok := strings.CutPrefix(cert.Subject.CommonName, "system:node:"); ok {
			j.nodeName = name
		}
	}
	return j, nil
}

// decodeYAML decodes a YAML (or JSON) document into v through JSON, so
// that []byte fields take base64 as kubeconfigs write them.
func decodeYAML(data []byte, v any) error {
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return err
	}
	js, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	return json.Unmarshal(js, v)
}

// httpClient is a client of the API server with the join's credentials.
func (j *join) httpClient() (*http.Client, error) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(j.caPEM)
	tc := &tls.Config{RootCAs: pool, ServerName: j.tlsServerName, MinVersion: tls.VersionTLS12}
	if len(j.certPEM) > 0 {
		pair, err := tls.X509KeyPair(j.certPEM, j.keyPEM)
		if err != nil {
			return nil, err
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	var rt http.RoundTripper = &http.Transport{TLSClientConfig: tc, Proxy: nil}
	if j.token != "" {
		rt = bearer{token: j.token, next: rt}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: rt}, nil
}

// bearer adds a bearer token to every request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// writeJoin writes the cluster CA as dir/ca.crt and a self-contained
// kubeconfig at path for server with the join's credentials: what
// cairn-kube runs the kubelet and kube-proxy with.
func writeJoin(dir, path, server string, j *join) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "ca.crt"), j.caPEM, 0o644); err != nil {
		return err
	}
	cluster := map[string]any{"server": server, "certificate-authority-data": j.caPEM}
	if j.tlsServerName != "" {
		cluster["tls-server-name"] = j.tlsServerName
	}
	user := map[string]any{}
	if len(j.certPEM) > 0 {
		user["client-certificate-data"], user["client-key-data"] = j.certPEM, j.keyPEM
	}
	if j.token != "" {
		user["token"] = j.token
	}
	// JSON is YAML: client-go reads it, []byte fields come out as base64.
	data, err := json.MarshalIndent(map[string]any{
		"apiVersion":      "v1",
		"kind":            "Config",
		"clusters":        []any{map[string]any{"name": "cairn", "cluster": cluster}},
		"users":           []any{map[string]any{"name": "node", "user": user}},
		"contexts":        []any{map[string]any{"name": "cairn", "context": map[string]any{"cluster": "cairn", "user": "node"}}},
		"current-context": "cairn",
	}, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, data, 0o600)
}

// agentConfig is cairn-kube's config for agent mode
// (agent/kube/README.md): the node's address, the join credentials in
// kubeconfig (and its CA in joinDir), the cluster's networks, which must
// be the control plane's.
func agentConfig(opts Options, nodeIP, kubeconfig string) map[string]any {
	c := opts.Config
	return map[string]any{
		"dataDir": DataDir, "certDir": joinDir, "nodeName": opts.NodeName, "nodeIP": nodeIP,
		"server": c.Server, "kubeconfig": kubeconfig,
		"clusterCIDR": c.ClusterCIDR, "serviceCIDR": c.ServiceCIDR, "clusterDNS": c.ClusterDNS,
		"clusterDomain": c.ClusterDomain, "containerdSocket": opts.Containerd,
		"gcPercent": 25, "extraArgs": c.ExtraArgs,
	}
}

func writeAgentConfig(path string, opts Options, nodeIP, kubeconfig string) error {
	data, err := json.MarshalIndent(agentConfig(opts, nodeIP, kubeconfig), "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, data, 0o600)
}

// dialUDP is a seam for tests: the node's address is the source address
// the kernel picks for the server (a UDP "connection" sends nothing).
var dialUDP = func(ctx context.Context, addr string) (net.Addr, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.LocalAddr(), nil
}

// nodeIPFor is the node's address on the way to server: what the kubelet
// registers as the node's InternalIP. The cluster link's address does not
// count: its fallback route is what the kernel picks while the network is
// still down.
func nodeIPFor(ctx context.Context, server, clusterAddr string) (string, error) {
	u, err := url.Parse(server)
	if err != nil {
		return "", err
	}
	port := u.Port()
	if port == "" {
		port = "443"
	}
	a, err := dialUDP(ctx, net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		return "", err
	}
	ua, ok := a.(*net.UDPAddr)
	if !ok {
		return "", fmt.Errorf("local address %v is not an IP address", a)
	}
	ip := ua.IP.String()
	if ip == clusterAddr || ua.IP.IsLoopback() || ua.IP.IsUnspecified() {
		return "", fmt.Errorf("no route to %s but the fallback (is the network up?)", u.Hostname())
	}
	return ip, nil
}

// waitNodeIP waits until the node has a route to server and returns its
// address on it; after unreachableAfter it says why it still waits.
func (n *Node) waitNodeIP(ctx context.Context, server string) (string, error) {
	began := time.Now()
	for {
		ip, err := nodeIPFor(ctx, server, n.opts.NodeIP)
		if err == nil {
			n.opts.Log.Info("node address", "ip", ip, "server", server)
			n.clearCondition(condNodeAddress)
			return ip, nil
		}
		if time.Since(began) > unreachableAfter {
			n.setCondition(condNodeAddress, "no address to reach the control plane %s from: %v (check the network; the node joins once it has one)", server, err)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

// watchAgent waits for the node to be Ready, as the control plane sees it
// through the join credentials, says so once and keeps the phase current;
// while it is not, it reports what keeps it, a control plane out of reach
// or refusing the credentials, as a condition that holds until the node
// gets through.
func (n *Node) watchAgent(ctx context.Context) {
	announced := false
	var unreachableSince time.Time
	for ctx.Err() == nil {
		ready, err := n.nodeReady(ctx)
		n.setPhase(ready, announced)
		switch {
		case ready:
			unreachableSince = time.Time{}
			n.clearCondition(condControlPlane)
			if !announced {
				announced = true
				n.opts.Say("kubernetes ready node=%s", n.opts.NodeName)
			}
		case err != nil && !isNotFound(err):
			// The node's own object is missing until the kubelet has
			// registered; anything else tells whether the control plane
			// can be reached and takes the credentials.
			if unreachableSince.IsZero() {
				unreachableSince = time.Now()
			}
			if isRefusal(err) || time.Since(unreachableSince) > unreachableAfter {
				n.setCondition(condControlPlane, "%s", joinProblem(err, n.agent.server, n.opts.NodeName))
			}
		default:
			// Reached, the node not registered yet.
			unreachableSince = time.Time{}
			n.clearCondition(condControlPlane)
		}
		select {
		case <-ctx.Done():
		case <-time.After(pollEvery(announced)):
		}
	}
}

func isNotFound(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == http.StatusNotFound
}

// isRefusal is an answer of the API server that waiting will not change.
func isRefusal(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && (se.Code == http.StatusUnauthorized || se.Code == http.StatusForbidden)
}

// joinProblem says what err, from reading the node's object on the
// control plane at server, means for the user.
func joinProblem(err error, server, nodeName string) string {
	var se *StatusError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	switch {
	case errors.As(err, &se) && se.Code == http.StatusUnauthorized:
		return fmt.Sprintf("the control plane at %s refused the join credentials (401 Unauthorized: another cluster's, or expired): mint new ones on a server node (cairn node join-kubeconfig --node %s)", server, nodeName)
	case errors.As(err, &se) && se.Code == http.StatusForbidden:
		return fmt.Sprintf("the control plane at %s does not let the join credentials read node %s (403: %s): the credentials must be a client certificate for system:node:%s in group system:nodes", server, nodeName, se.Message, nodeName)
	case errors.As(err, &se):
		return fmt.Sprintf("the control plane at %s answers %v", server, se)
	case errors.As(err, &unknownCA):
		return fmt.Sprintf("the server at %s presents a certificate the join kubeconfig's CA did not sign: is kubernetes.server this cluster's API server?", server)
	case errors.As(err, &hostErr):
		return fmt.Sprintf("the server at %s presents a certificate for other names (%v): is kubernetes.server this cluster's API server? (the join kubeconfig's tls-server-name, or else the server's host, must be among them)", server, hostErr)
	}
	return fmt.Sprintf("cannot reach the control plane at %s: %v (check kubernetes.server, the network and firewalls; the node keeps trying)", server, err)
}
