// Package kubeboot brings up the bundled Kubernetes on a node: it keeps the
// cluster's PKI on CAIRN-DATA, writes cairn-kube's configuration, imports
// the baked images into containerd, runs cairn-kube, waits until the API
// server is ready and the node Ready, and applies the auto-deploy manifests.
// A node in agent mode (agent.go) instead joins a control plane elsewhere
// with a join kubeconfig and runs only the kubelet and kube-proxy; a
// server mints join kubeconfigs for such nodes (join.go).
package kubeboot

import (
	"fmt"
	"net"
	"net/url"
	"slices"

	"github.com/cairn-edge/cairn/agent/contract"
)

// Where the builder bakes what the cluster needs into a slot, and where a
// node keeps the cluster's state.
const (
	// ImagesDir holds one OCI layout per image, imported into containerd's
	// k8s.io namespace under the name its index gives
	// (org.opencontainers.image.ref.name).
	ImagesDir = contract.KubeImagesDir
	// ManifestsDir holds the spec's auto-deploy manifests, applied in
	// file name order.
	ManifestsDir = contract.KubeManifestsBaked
	// JoinKubeconfig is the agent-mode kubeconfig baked from the spec.
	JoinKubeconfig = contract.KubeJoinBaked
	// NodeJoinKubeconfig on the ESP overrides JoinKubeconfig per node.
	NodeJoinKubeconfig = contract.KubeJoinFile
	// DataDir is cairn-kube's state on CAIRN-DATA.
	DataDir = contract.KubeDir
	// UserManifestsDir on CAIRN-DATA takes manifests users drop in (e.g. a
	// Rancher registration); applied after ManifestsDir, in name order.
	UserManifestsDir = contract.KubeManifestsDir
)

// Modes of a node.
const (
	// ModeServer runs the whole single-node cluster.
	ModeServer = "server"
	// ModeAgent runs only the kubelet and kube-proxy, joining Server.
	ModeAgent = "agent"
)

// Config is the spec's `kubernetes` section (and the agent's).
type Config struct {
	// Mode is server (default) or agent.
	Mode string `yaml:"mode,omitempty"`
	// Server is the API server an agent joins, https://host:6443.
	Server string `yaml:"server,omitempty"`
	// JoinKubeconfig (agent mode) is a kubeconfig file, relative to the
	// spec, whose user may act as kubelet and kube-proxy; the builder bakes
	// it at JoinKubeconfig. A node's NodeJoinKubeconfig overrides it.
	JoinKubeconfig string `yaml:"joinKubeconfig,omitempty"`
	// ClusterCIDR is the pod network (10.42.0.0/16).
	ClusterCIDR string `yaml:"clusterCIDR,omitempty"`
	// ServiceCIDR is the service network (10.43.0.0/16).
	ServiceCIDR string `yaml:"serviceCIDR,omitempty"`
	// ClusterDNS is the cluster DNS service address (10.43.0.10).
	ClusterDNS string `yaml:"clusterDNS,omitempty"`
	// ClusterDomain is the cluster DNS domain (cluster.local).
	ClusterDomain string `yaml:"clusterDomain,omitempty"`
	// Manifests are auto-deploy manifests: files or directories of *.yaml,
	// relative to the spec, baked into ManifestsDir.
	Manifests []string `yaml:"manifests,omitempty"`
	// Images are baked into ImagesDir so that pods using them start with
	// no network.
	Images []Image `yaml:"images,omitempty"`
	// ExtraArgs are flags per component (kube-apiserver,
	// kube-controller-manager, kube-scheduler, kubelet, kube-proxy),
	// applied last.
	ExtraArgs map[string][]string `yaml:"extraArgs,omitempty"`
}

// Image is an image baked for the cluster.
type Image struct {
	// Name is the name pods use, e.g. registry.example.com/web:1.2.
	Name string `yaml:"name"`
	// Image is where the builder takes it from (any input reference);
	// empty means Name itself.
	Image string `yaml:"image,omitempty"`
}

// Ref is where the builder takes the image from.
func (i Image) Ref() string {
	if i.Image != "" {
		return i.Image
	}
	return i.Name
}

// Components that take ExtraArgs.
var Components = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"}

// WithDefaults returns c with every empty setting at its default.
func (c Config) WithDefaults() Config {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Mode, ModeServer)
	def(&c.ClusterCIDR, "10.42.0.0/16")
	def(&c.ServiceCIDR, "10.43.0.0/16")
	def(&c.ClusterDNS, "10.43.0.10")
	def(&c.ClusterDomain, "cluster.local")
	return c
}

// Validate checks the settings; errors name the key and the fix.
func (c Config) Validate() error {
	c = c.WithDefaults()
	switch c.Mode {
	case ModeServer:
		if c.Server != "" || c.JoinKubeconfig != "" {
			return fmt.Errorf("server and joinKubeconfig are for mode agent (set mode: agent, or remove them)")
		}
	case ModeAgent:
		u, err := url.Parse(c.Server)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("mode agent needs server: https://HOST:PORT of the control plane (got %q)", c.Server)
		}
	default:
		return fmt.Errorf("mode %q is not server or agent", c.Mode)
	}
	var nets [2]*net.IPNet
	for i, kv := range [][2]string{{"clusterCIDR", c.ClusterCIDR}, {"serviceCIDR", c.ServiceCIDR}} {
		_, n, err := net.ParseCIDR(kv[1])
		if err != nil || n.IP.To4() == nil {
			return fmt.Errorf("%s %q is not an IPv4 network like 10.42.0.0/16", kv[0], kv[1])
		}
		nets[i] = n
	}
	if nets[0].Contains(nets[1].IP) || nets[1].Contains(nets[0].IP) {
		return fmt.Errorf("clusterCIDR %s and serviceCIDR %s overlap (pick disjoint networks)", c.ClusterCIDR, c.ServiceCIDR)
	}
	if ip := net.ParseIP(c.ClusterDNS); ip == nil || !nets[1].Contains(ip) {
		return fmt.Errorf("clusterDNS %q must be an address inside serviceCIDR %s", c.ClusterDNS, c.ServiceCIDR)
	}
	for name := range c.ExtraArgs {
		if !slices.Contains(Components, name) {
			return fmt.Errorf("extraArgs has %q; components are %v", name, Components)
		}
	}
	for i, img := range c.Images {
		if img.Name == "" {
			return fmt.Errorf("images[%d] has no name (the image name pods use)", i)
		}
	}
	return nil
}
