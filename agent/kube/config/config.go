// Package config reads the file the node agent writes to tell cairn-kube
// what to run: where its state and credentials live, the node's name and
// address, the cluster's networks, and extra flags per component. The format
// is documented in agent/kube/README.md; the root module writes it without
// importing this package (it cannot: this is another Go module).
//
//	cfg, err := config.Load("/var/lib/cairn/kube/config.yaml")
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// Component names, the keys of Config.ExtraArgs.
const (
	APIServer         = "kube-apiserver"
	ControllerManager = "kube-controller-manager"
	Scheduler         = "kube-scheduler"
	Kubelet           = "kubelet"
	KubeProxy         = "kube-proxy"
)

// Components lists every component name, in start order.
var Components = []string{APIServer, ControllerManager, Scheduler, Kubelet, KubeProxy}

// Config is the content of the config file. Every field has a default but
// NodeIP (the components find one) and, in agent mode, Server.
type Config struct {
	// DataDir holds the datastore (db/state.db), the kubelet's root
	// (kubelet/) and the kubeconfigs cairn-kube writes (kubeconfig/).
	DataDir string `json:"dataDir,omitempty"`
	// CertDir holds the PKI files named in the README; default DataDir/pki.
	CertDir string `json:"certDir,omitempty"`
	// NodeName is the Kubernetes node name; default the host name, lowercased.
	NodeName string `json:"nodeName,omitempty"`
	// NodeIP is the node's address; empty lets the components pick the
	// address of the default route's interface.
	NodeIP string `json:"nodeIP,omitempty"`
	// ClusterCIDR is the pod network, split into one /24 per node.
	ClusterCIDR string `json:"clusterCIDR,omitempty"`
	// ServiceCIDR is the service network; its first address is the API's
	// in-cluster address (kubernetes.default).
	ServiceCIDR string `json:"serviceCIDR,omitempty"`
	// ClusterDNS is the cluster DNS service's address, given to pods.
	ClusterDNS string `json:"clusterDNS,omitempty"`
	// ClusterDomain is the cluster's DNS domain.
	ClusterDomain string `json:"clusterDomain,omitempty"`
	// ContainerdSocket is the CRI endpoint: the system containerd's socket
	// (the kubelet uses its CRI namespace k8s.io).
	ContainerdSocket string `json:"containerdSocket,omitempty"`
	// APIPort is the API server's HTTPS port (server mode).
	APIPort int `json:"apiPort,omitempty"`
	// Server is the API server's URL in agent mode, e.g. https://10.0.0.1:6443.
	Server string `json:"server,omitempty"`
	// Kubeconfig, in agent mode, replaces the kubeconfigs cairn-kube writes
	// from CertDir for the kubelet and kube-proxy; its user needs the rights
	// of both (system:nodes and system:node-proxier).
	Kubeconfig string `json:"kubeconfig,omitempty"`
	// ControlPlaneOnly runs a server without the kubelet and kube-proxy: the
	// API, the datastore and the controllers, nothing that touches the host.
	ControlPlaneOnly bool `json:"controlPlaneOnly,omitempty"`
	// MemoryLimitMiB is the Go runtime's soft memory limit for the whole
	// process (debug.SetMemoryLimit): the garbage collector works harder as
	// the heap nears it. 0: no limit.
	MemoryLimitMiB int `json:"memoryLimitMiB,omitempty"`
	// GCPercent is GOGC for the process; 0 keeps Go's default (100). Lower
	// values trade CPU for a smaller heap.
	GCPercent int `json:"gcPercent,omitempty"`
	// LogLevel is the klog verbosity (-v) of every component.
	LogLevel int `json:"logLevel,omitempty"`
	// ExtraArgs are flags per component ("kube-apiserver", "kubelet", …),
	// each "--name=value", applied after cairn-kube's own (so they win).
	ExtraArgs map[string][]string `json:"extraArgs,omitempty"`
}

// Defaults for the fields of Config.
const (
	DefaultDataDir          = "/var/lib/cairn/kube"
	DefaultClusterCIDR      = "10.42.0.0/16"
	DefaultServiceCIDR      = "10.43.0.0/16"
	DefaultClusterDNS       = "10.43.0.10"
	DefaultClusterDomain    = "cluster.local"
	DefaultContainerdSocket = "/run/containerd/containerd.sock"
	DefaultAPIPort          = 6443
)

// hostname is a seam for tests.
var hostname = os.Hostname

// Load reads, defaults and checks the config file at path (YAML or JSON).
// Unknown fields are errors, so a typo never goes unnoticed.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w (write it as agent/kube/README.md describes, or pass --config)", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Parse reads, defaults and checks a config document (YAML or JSON).
func Parse(data []byte) (*Config, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, err
	}
	cfg := &Config{}
	if len(bytes.TrimSpace(js)) > 0 && string(bytes.TrimSpace(js)) != "null" {
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.DisallowUnknownFields()
		if err := dec.Decode(cfg); err != nil {
			return nil, err
		}
	}
	if err := cfg.Complete(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Complete fills in defaults and checks the result.
func (c *Config) Complete() error {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.DataDir, DefaultDataDir)
	def(&c.CertDir, filepath.Join(c.DataDir, "pki"))
	def(&c.ClusterCIDR, DefaultClusterCIDR)
	def(&c.ServiceCIDR, DefaultServiceCIDR)
	def(&c.ClusterDNS, DefaultClusterDNS)
	def(&c.ClusterDomain, DefaultClusterDomain)
	def(&c.ContainerdSocket, DefaultContainerdSocket)
	if c.APIPort == 0 {
		c.APIPort = DefaultAPIPort
	}
	if c.NodeName == "" {
		h, err := hostname()
		if err != nil {
			return fmt.Errorf("nodeName is empty and the host name is unknown (%v): set nodeName", err)
		}
		c.NodeName = strings.ToLower(h)
	}
	return c.validate()
}

func (c *Config) validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	for name, dir := range map[string]string{"dataDir": c.DataDir, "certDir": c.CertDir} {
		if !filepath.IsAbs(dir) {
			bad("%s %q is not an absolute path", name, dir)
		}
	}
	if c.NodeIP != "" {
		if ip := net.ParseIP(c.NodeIP); ip == nil {
			bad("nodeIP %q is not an IP address", c.NodeIP)
		} else if ip.IsLoopback() {
			bad("nodeIP %s is a loopback address, which pods cannot reach the API at: use the node's network address or leave it empty", c.NodeIP)
		}
	}
	_, svcNet, err := net.ParseCIDR(c.ServiceCIDR)
	if err != nil {
		bad("serviceCIDR %q is not a CIDR (e.g. %s)", c.ServiceCIDR, DefaultServiceCIDR)
	}
	if _, _, err := net.ParseCIDR(c.ClusterCIDR); err != nil {
		bad("clusterCIDR %q is not a CIDR (e.g. %s)", c.ClusterCIDR, DefaultClusterCIDR)
	}
	if ip := net.ParseIP(c.ClusterDNS); ip == nil {
		bad("clusterDNS %q is not an IP address", c.ClusterDNS)
	} else if svcNet != nil && !svcNet.Contains(ip) {
		bad("clusterDNS %s is outside serviceCIDR %s: pick an address inside it", c.ClusterDNS, c.ServiceCIDR)
	}
	if c.APIPort < 1 || c.APIPort > 65535 {
		bad("apiPort %d is not a TCP port", c.APIPort)
	}
	if !filepath.IsAbs(c.ContainerdSocket) {
		bad("containerdSocket %q is not an absolute path", c.ContainerdSocket)
	}
	if c.Server != "" {
		if u, err := url.Parse(c.Server); err != nil || u.Scheme != "https" || u.Host == "" {
			bad("server %q is not an https:// URL (e.g. https://10.0.0.1:6443)", c.Server)
		}
	}
	if c.MemoryLimitMiB < 0 {
		bad("memoryLimitMiB %d is negative: use 0 for no limit", c.MemoryLimitMiB)
	}
	if c.GCPercent < -1 {
		bad("gcPercent %d: use a positive percentage, 0 for Go's default or -1 to turn the collector off", c.GCPercent)
	}
	for comp, args := range c.ExtraArgs {
		if !slices.Contains(Components, comp) {
			bad("extraArgs: unknown component %q (one of %s)", comp, strings.Join(Components, ", "))
		}
		for _, a := range args {
			if !strings.HasPrefix(a, "--") {
				bad("extraArgs[%s]: %q is not a flag: write it as --name=value", comp, a)
			}
		}
	}
	return errors.Join(errs...)
}

// ServiceIP is the first address of the service network: the API server's
// in-cluster address (the service kubernetes.default).
func (c *Config) ServiceIP() net.IP {
	_, n, err := net.ParseCIDR(c.ServiceCIDR)
	if err != nil {
		return nil
	}
	ip := slices.Clone(n.IP)
	ip[len(ip)-1]++
	return ip
}

// CheckAgent checks what agent mode needs besides the defaults.
func (c *Config) CheckAgent() error {
	if c.Server == "" && c.Kubeconfig == "" {
		return errors.New("agent mode needs server (the API server's URL) or kubeconfig in the config file")
	}
	if c.ControlPlaneOnly {
		return errors.New("controlPlaneOnly makes no sense in agent mode, which runs only the kubelet and kube-proxy: remove it")
	}
	return nil
}

// DBPath is the SQLite database kine keeps the cluster's state in.
func (c *Config) DBPath() string { return filepath.Join(c.DataDir, "db", "state.db") }

// KineSocket is the unix socket of the in-process etcd endpoint.
func (c *Config) KineSocket() string { return filepath.Join(c.DataDir, "kine.sock") }

// KubeletRoot is the kubelet's root directory (volumes, pod state).
func (c *Config) KubeletRoot() string { return filepath.Join(c.DataDir, "kubelet") }

// Cert is the path of a PKI file in CertDir, e.g. Cert("ca.crt").
func (c *Config) Cert(name string) string { return filepath.Join(c.CertDir, name) }

// LocalAPIServer is the URL the components of a server reach the API at.
func (c *Config) LocalAPIServer() string { return fmt.Sprintf("https://127.0.0.1:%d", c.APIPort) }

// KubeconfigFor is the kubeconfig cairn-kube writes for a PKI identity
// (e.g. "scheduler" for scheduler.crt).
func (c *Config) KubeconfigFor(identity string) string {
	return filepath.Join(c.DataDir, "kubeconfig", identity+".kubeconfig")
}
