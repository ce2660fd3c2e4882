// Package firewall is the node's host firewall: one nftables table,
// inet cairn, whose input chain drops what the node does not serve. The
// policy comes from the agent's configuration (config.Firewall); Render
// turns it into nft(8) ruleset text, a pure function the tests read, and
// Apply loads that text with `nft -f` in one transaction, replacing any
// earlier version of the table and nothing else.
//
//	p := firewall.PolicyFor(conf)
//	if err := firewall.Apply(ctx, p); err != nil { … }
//
// The table is separate from those the CNI plugins (bridge masquerading,
// portmap) and kube-proxy create, so neither side ever flushes the other's
// rules. It has no forward chain: pod and Service traffic that crosses the
// node is theirs to translate and is not filtered here. A packet must be
// accepted by every table's input chain, so this one adds a drop and takes
// nothing away from the others' rules.
package firewall

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"github.com/cairn-edge/cairn/agent/config"
	"github.com/cairn-edge/cairn/agent/runtime"
)

// Table is the nftables table the policy lives in, family inet (IPv4 and
// IPv6 in one).
const Table = "cairn"

// Ports the policy admits for Kubernetes.
const (
	// KubeAPIPort is the API server's port on a server node (cairn-kube's
	// default apiPort).
	KubeAPIPort = 6443
	// KubeletPort is the kubelet's API, which the API server calls for
	// logs, exec and port-forward.
	KubeletPort = 10250
	// NodePortMin and NodePortMax bound Kubernetes' default NodePort range
	// (--service-node-port-range), where kube-proxy also serves
	// LoadBalancer health-check node ports itself, untranslated.
	NodePortMin = 30000
	NodePortMax = 32767
)

// Policy is what the node admits besides loopback, replies, ICMP and DHCP.
type Policy struct {
	// APIPort is the node API's port.
	APIPort int
	// KubeAPI admits KubeAPIPort (a Kubernetes server).
	KubeAPI bool
	// Kubelet admits KubeletPort (an agent-mode node, whose kubelet the
	// server's API server calls over the network).
	Kubelet bool
	// Pods admits what a Kubernetes node's pods and Services need: traffic
	// from the pod bridge, traffic kube-proxy or portmap translated
	// (Services, host ports), and the NodePort range.
	Pods bool
	// Metrics, when set, admits the plain /metrics port (api.metrics) on
	// its one interface, as the agent serves it.
	Metrics *config.PlainMetrics
	// Allow are the spec's extra entries, already validated.
	Allow []config.FirewallAllow
}

// PolicyFor is the policy for a node's configuration, apiPort being the
// node API's port. It says nothing about whether the policy is on: see
// config.Config.FirewallOn.
//
// A server's kubelet is left out: its only network clients are its own
// API server (over loopback: the node address is local) and its pods
// (the pod bridge), both admitted anyway. An agent-mode node runs no API
// server.
func PolicyFor(c config.Config, apiPort int) Policy {
	p := Policy{APIPort: apiPort, Metrics: c.API.Metrics, Allow: c.Firewall.Allow}
	if k := c.Kubernetes; k != nil {
		p.Pods = true
		switch k.WithDefaults().Mode {
		case config.ModeServer:
			p.KubeAPI = true
		case config.ModeAgent:
			p.Kubelet = true
		}
	}
	return p
}

// Render is the policy as an nft(8) script. Loaded with `nft -f`, it
// creates the table if missing, deletes it and creates it anew, all in one
// transaction: the node is never without the policy, nor with two.
func Render(p Policy) string {
	var b strings.Builder
	rule := func(r, comment string) {
		fmt.Fprintf(&b, "\t\t%s comment %q\n", r, comment)
	}
	fmt.Fprintf(&b, "# The host firewall of cairn-agent (agent/firewall); the agent replaces it at start.\n")
	fmt.Fprintf(&b, "table inet %s\ndelete table inet %s\n", Table, Table)
	fmt.Fprintf(&b, "table inet %s {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n", Table)
	rule(`iifname "lo" accept`, "loopback")
	rule("ct state established,related accept", "replies")
	rule("ct state invalid drop", "invalid")
	// ICMPv6 carries neighbour discovery and router adverts; both carry
	// "packet too big", without which path MTU discovery stalls.
	rule("meta l4proto icmp accept", "ICMP")
	rule("meta l4proto ipv6-icmp accept", "ICMPv6")
	rule("udp sport 67 udp dport 68 accept", "DHCPv4 replies")
	rule("ip6 saddr fe80::/10 udp sport 547 udp dport 546 accept", "DHCPv6 replies")
	if p.APIPort > 0 {
		rule(fmt.Sprintf("tcp dport %d accept", p.APIPort), "node API")
	}
	if m := p.Metrics; m != nil {
		rule(fmt.Sprintf("iifname %q tcp dport %d accept", m.Interface, m.ListenPort()), "plain metrics")
	}
	if p.KubeAPI {
		rule(fmt.Sprintf("tcp dport %d accept", KubeAPIPort), "Kubernetes API")
	}
	if p.Kubelet {
		rule(fmt.Sprintf("tcp dport %d accept", KubeletPort), "kubelet")
	}
	if p.Pods {
		rule(fmt.Sprintf("iifname %q accept", runtime.PodBridge), "pods")
		rule("ct status dnat accept", "Services and host ports")
		rule(fmt.Sprintf("meta l4proto { tcp, udp } th dport %d-%d accept", NodePortMin, NodePortMax), "NodePorts")
	}
	for i, a := range p.Allow {
		r := fmt.Sprintf("%s dport %d accept", a.Protocol(), a.Port)
		if src, ok := a.Source(); ok {
			fam := "ip"
			if src.Addr().Is6() {
				fam = "ip6"
			}
			r = fmt.Sprintf("%s saddr %s %s", fam, src, r)
		}
		rule(r, fmt.Sprintf("firewall.allow[%d]", i))
	}
	b.WriteString("\t}\n}\n")
	return b.String()
}

// NftPath is the nft binary in a slot (from the board's tool image).
const NftPath = "/usr/sbin/nft"

// ErrNoNft says the slot has no nft binary.
var ErrNoNft = errors.New(NftPath + " is missing (the board's kubernetes.tools bring it)")

// nft runs the nft binary with the script on its standard input; a seam
// for tests.
var nft = func(ctx context.Context, script string) ([]byte, error) {
	if _, err := exec.LookPath(NftPath); err != nil {
		return nil, ErrNoNft
	}
	cmd := exec.CommandContext(ctx, NftPath, "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	return cmd.CombinedOutput()
}

// Apply renders p and loads it.
func Apply(ctx context.Context, p Policy) error {
	return Load(ctx, Render(p))
}

// Load loads a ruleset script (Render's) with nft -f.
func Load(ctx context.Context, script string) error {
	out, err := nft(ctx, script)
	if err != nil {
		if msg := bytes.TrimSpace(out); len(msg) > 0 {
			return fmt.Errorf("nft -f: %w: %s", err, msg)
		}
		return fmt.Errorf("nft -f: %w", err)
	}
	return nil
}

// Summary says in one line what the policy admits besides loopback,
// replies, ICMP and DHCP, for the console and the health model.
func (p Policy) Summary() string {
	var s []string
	if p.APIPort > 0 {
		s = append(s, fmt.Sprintf("node API %d/tcp", p.APIPort))
	}
	if m := p.Metrics; m != nil {
		s = append(s, fmt.Sprintf("metrics %d/tcp on %s", m.ListenPort(), m.Interface))
	}
	if p.KubeAPI {
		s = append(s, fmt.Sprintf("Kubernetes API %d/tcp", KubeAPIPort))
	}
	if p.Kubelet {
		s = append(s, fmt.Sprintf("kubelet %d/tcp", KubeletPort))
	}
	if p.Pods {
		s = append(s, fmt.Sprintf("pods, Services, NodePorts %d-%d", NodePortMin, NodePortMax))
	}
	for _, a := range p.Allow {
		e := fmt.Sprintf("%d/%s", a.Port, a.Protocol())
		if src, ok := a.Source(); ok {
			e += " from " + src.String()
		}
		s = append(s, e)
	}
	return "admits " + strings.Join(s, ", ")
}
