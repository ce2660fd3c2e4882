// Package runtime holds what the image needs of the container runtime
// besides its binaries (which agent/runtime/build.sh builds from the pinned
// nested modules in runc/ and cni/): containerd's configuration and the
// pod network's CNI configuration template.
package runtime

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/netip"
	"text/template"

	"github.com/cairn-edge/cairn/agent/contract"
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

// Where CRI finds the pod network (config.toml names them). The node's
// pod range (podCIDR) is known only once the controller manager has given
// the node one, and differs from node to node: the slot carries a template,
// and containerd's CRI renders it into CNIConfDir when the kubelet reports
// the podCIDR (CRI UpdateRuntimeConfig, conf_template).
const (
	// CNITemplatePath is the network configuration template (CNITemplate).
	CNITemplatePath = "/etc/containerd/10-cairn.conflist.tmpl"
	// CNIConfDir is containerd's conf_dir: on tmpfs, so the configuration
	// is rendered for the podCIDR of each boot, and writable, so that
	// cluster network add-ons (flannel, calico) can drop theirs too.
	CNIConfDir = contract.CNIConfDir
	// CNILinkPath, where CNI add-ons expect configurations, is a link in
	// the slot to CNIConfDir.
	CNILinkPath = "/etc/cni/net.d"
	// CNIConfigName is the file containerd renders CNITemplatePath to in
	// CNIConfDir.
	CNIConfigName = "10-containerd-net.conflist"
	// CNIBinDir holds the CNI plugins.
	CNIBinDir = "/usr/libexec/cni"
)

// CNIPlugins are the plugins CNITemplate uses (loopback: CRI sets up each
// pod's lo with it), built by build.sh into BINDIR/linux-<arch>/cni/.
var CNIPlugins = []string{"bridge", "host-local", "loopback", "portmap"}

// PodBridge is the bridge CNITemplate puts every pod on: the host's side
// of the pod network, which the host firewall (agent/firewall) admits.
const PodBridge = "cni0"

// NodePodPrefix is the size of the pod range the controller manager gives
// each node out of the cluster CIDR (its --node-cidr-mask-size default).
const NodePodPrefix = 24

// CNITemplate is the network configuration template, a Go text/template
// containerd executes with the node's pod ranges: bridge cni0 with
// masquerading and port mappings through nftables (nft is in the slot),
// host-local addresses from every range of {{.PodCIDRRanges}}. It lives
// here, not in cni/, because cni/ is a module of its own, which go:embed
// cannot reach into.
//
//go:embed 10-cairn.conflist.tmpl
var CNITemplate []byte

var cniTmpl = template.Must(template.New("10-cairn.conflist").Option("missingkey=error").Parse(string(CNITemplate)))

// cniTemplateData is what containerd v2.4 gives the template
// (internal/cri/server/update_runtime_config.go, cniConfigTemplate).
type cniTemplateData struct {
	PodCIDR       string
	PodCIDRRanges []string
	Routes        []string
}

// CNIConfig renders CNITemplate as containerd does for a node whose
// podCIDRs (from the Node object, e.g. 10.42.1.0/24) are given.
func CNIConfig(podCIDRs ...string) ([]byte, error) {
	if len(podCIDRs) == 0 {
		return nil, fmt.Errorf("CNI configuration: no podCIDR given")
	}
	d := cniTemplateData{PodCIDR: podCIDRs[0], PodCIDRRanges: podCIDRs}
	var v4, v6 bool
	for _, c := range podCIDRs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("podCIDR %q is not a network like 10.42.1.0/24", c)
		}
		v4, v6 = v4 || p.Addr().Is4(), v6 || p.Addr().Is6()
	}
	if v4 {
		d.Routes = append(d.Routes, "0.0.0.0/0")
	}
	if v6 {
		d.Routes = append(d.Routes, "::/0")
	}
	var b bytes.Buffer
	if err := cniTmpl.Execute(&b, d); err != nil {
		return nil, err
	}
	if !json.Valid(b.Bytes()) {
		return nil, fmt.Errorf("CNI configuration for %v is not valid JSON", podCIDRs)
	}
	return b.Bytes(), nil
}

// CheckClusterCIDR checks that an IPv4 cluster CIDR holds at least one
// node's /24 pod range.
func CheckClusterCIDR(clusterCIDR string) error {
	p, err := netip.ParsePrefix(clusterCIDR)
	if err != nil || !p.Addr().Is4() {
		return fmt.Errorf("clusterCIDR %q is not an IPv4 network like 10.42.0.0/16", clusterCIDR)
	}
	if p.Bits() > NodePodPrefix {
		return fmt.Errorf("clusterCIDR %s is smaller than one node's /%d pod range: use a /%d or larger, e.g. 10.42.0.0/16", clusterCIDR, NodePodPrefix, NodePodPrefix)
	}
	return nil
}
