// Package runtime holds what the image needs of the container runtime
// besides its binaries (which agent/runtime/build.sh builds from the pinned
// nested modules in runc/ and cni/): containerd's configuration and the
// pod network's CNI configuration.
package runtime

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/netip"
	"text/template"
)

// ContainerdConfig is /etc/containerd/config.toml in the slot.
//
//go:embed config.toml
var ContainerdConfig []byte

// ConfigPath is where the slot holds ContainerdConfig; cairn-init starts
// containerd with --config ConfigPath.
const ConfigPath = "/etc/containerd/config.toml"

// SandboxImage is the pod sandbox image config.toml pins: every node that
// runs Kubernetes must have it baked in, since containerd never pulls it.
const SandboxImage = "cairn.local/pause:3.10"

// Where CRI finds the pod network (config.toml names both directories).
const (
	// CNIConfigPath is the one network configuration, written by CNIConfig.
	CNIConfigPath = "/etc/cni/net.d/10-cairn.conflist"
	// CNIBinDir holds the CNI plugins.
	CNIBinDir = "/usr/libexec/cni"
)

// CNIPlugins are the plugins CNIConfig uses (loopback: CRI sets up each
// pod's lo with it), built by build.sh into BINDIR/linux-<arch>/cni/.
var CNIPlugins = []string{"bridge", "host-local", "loopback", "portmap"}

// NodePodPrefix is the size of the pod range the controller manager gives
// each node out of the cluster CIDR (its --node-cidr-mask-size default).
const NodePodPrefix = 24

// cniTemplate is the network configuration: bridge cni0 with masquerading
// and port mappings through nftables (nft is in the slot), host-local
// addresses from {{.Subnet}}. It lives here, not in cni/, because cni/ is a
// module of its own, which go:embed cannot reach into.
//
//go:embed 10-cairn.conflist.tmpl
var cniTemplate string

var cniTmpl = template.Must(template.New("10-cairn.conflist").Option("missingkey=error").Parse(cniTemplate))

// CNIConfig renders CNIConfigPath for a single node of the cluster whose
// pod network is clusterCIDR (e.g. 10.42.0.0/16): host-local hands out
// addresses from its first /24, the podCIDR the controller manager gives
// the first (on a single-node cluster, the only) node.
func CNIConfig(clusterCIDR string) ([]byte, error) {
	subnet, err := FirstNodeSubnet(clusterCIDR)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := cniTmpl.Execute(&b, struct{ Subnet string }{subnet.String()}); err != nil {
		return nil, err
	}
	if !json.Valid(b.Bytes()) {
		return nil, fmt.Errorf("CNI configuration for %s is not valid JSON", clusterCIDR)
	}
	return b.Bytes(), nil
}

// FirstNodeSubnet is the first /24 of an IPv4 cluster CIDR.
func FirstNodeSubnet(clusterCIDR string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(clusterCIDR)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("clusterCIDR %q is not an IPv4 network like 10.42.0.0/16", clusterCIDR)
	}
	if p.Bits() > NodePodPrefix {
		return netip.Prefix{}, fmt.Errorf("clusterCIDR %s is smaller than one node's /%d pod range: use a /%d or larger, e.g. 10.42.0.0/16", clusterCIDR, NodePodPrefix, NodePodPrefix)
	}
	return netip.PrefixFrom(p.Masked().Addr(), NodePodPrefix), nil
}
