package config

import (
	"fmt"
	"net"
	"net/url"
	"slices"
)

// Modes of a Kubernetes node.
const (
	// ModeServer runs the whole single-node cluster.
	ModeServer = "server"
	// ModeAgent runs only the kubelet and kube-proxy, joining Server.
	ModeAgent = "agent"
)

// Kubernetes is the spec's `kubernetes` section (and the agent's): the
// bundled Kubernetes (agent/kubeboot runs it).
type Kubernetes struct {
	// Mode is server (default) or agent.
	Mode string `yaml:"mode,omitempty"`
	// Server is the API server an agent joins, https://host:6443.
	Server string `yaml:"server,omitempty"`
	// JoinKubeconfig (agent mode) is a kubeconfig file, relative to the
	// spec, whose user may act as kubelet and kube-proxy; the builder bakes
	// it at contract.KubeJoinBaked. A node's contract.KubeJoinFile overrides it.
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
	// relative to the spec, baked into contract.KubeManifestsBaked.
	Manifests []string `yaml:"manifests,omitempty"`
	// Images are baked into contract.KubeImagesDir so that pods using them start with
	// no network.
	Images []KubeImage `yaml:"images,omitempty"`
	// ExtraArgs are flags per component (kube-apiserver,
	// kube-controller-manager, kube-scheduler, kubelet, kube-proxy),
	// applied last.
	ExtraArgs map[string][]string `yaml:"extraArgs,omitempty"`
}

// KubeImage is an image baked for the cluster.
type KubeImage struct {
	// Name is the name pods use, e.g. registry.example.com/web:1.2.
	Name string `yaml:"name"`
	// Image is where the builder takes it from (any input reference);
	// empty means Name itself.
	Image string `yaml:"image,omitempty"`
}

// Ref is where the builder takes the image from.
func (i KubeImage) Ref() string {
	if i.Image != "" {
		return i.Image
	}
	return i.Name
}

// KubeComponents are the components that take ExtraArgs.
var KubeComponents = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"}

// WithDefaults returns c with every empty setting at its default.
func (c Kubernetes) WithDefaults() Kubernetes {
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
func (c Kubernetes) Validate() error {
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
		if !slices.Contains(KubeComponents, name) {
			return fmt.Errorf("extraArgs has %q; components are %v", name, KubeComponents)
		}
	}
	for i, img := range c.Images {
		if img.Name == "" {
			return fmt.Errorf("images[%d] has no name (the image name pods use)", i)
		}
	}
	return nil
}
