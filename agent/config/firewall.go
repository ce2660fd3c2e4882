package config

import (
	"errors"
	"fmt"
	"net/netip"
)

// Firewall is the spec's `firewall` section (and the agent's): the host's
// input policy, which package agent/firewall renders and applies.
//
//	firewall:
//	  enabled: true
//	  allow:
//	    - {port: 8080, proto: tcp, from: 10.0.0.0/8}
//	    - {port: 5353, proto: udp}
//
// When on, the node admits only loopback, replies to its own traffic,
// ICMP, DHCP replies, the node API (and api.metrics on its interface),
// what the node's Kubernetes role serves (the API server on a server, the
// kubelet on an agent-mode node), what Services expose (NodePorts and
// translated Service and host-port traffic), traffic from its pods, and
// the entries of Allow; it drops the rest. Forwarded traffic (pods,
// Services) is not filtered.
type Firewall struct {
	// Enabled turns the policy on or off. Unset means on for a node that
	// runs Kubernetes (its slot carries nft and the nf_tables modules, and
	// the kubelet and API server listen on the network) and off for
	// others, where only the node API (mutual TLS) listens.
	Enabled *bool `yaml:"enabled,omitempty"`
	// Allow admits more traffic to the node itself.
	Allow []FirewallAllow `yaml:"allow,omitempty"`
}

// FirewallAllow admits one port to the node.
type FirewallAllow struct {
	// Port is the destination port, 1–65535.
	Port int `yaml:"port"`
	// Proto is tcp (the default) or udp.
	Proto string `yaml:"proto,omitempty"`
	// From, when set, admits only sources in this network (CIDR form,
	// 10.0.0.0/8 or fd00::/8; a bare address means that host alone).
	From string `yaml:"from,omitempty"`
}

// Firewall protocols.
const (
	ProtoTCP = "tcp"
	ProtoUDP = "udp"
)

// Protocol is Proto with its default applied.
func (a FirewallAllow) Protocol() string {
	if a.Proto == "" {
		return ProtoTCP
	}
	return a.Proto
}

// Source is From as a network; ok is false when From is empty (any
// source). From must have passed Validate.
func (a FirewallAllow) Source() (p netip.Prefix, ok bool) {
	if a.From == "" {
		return netip.Prefix{}, false
	}
	if p, err := netip.ParsePrefix(a.From); err == nil {
		return p.Masked(), true
	}
	addr, _ := netip.ParseAddr(a.From)
	return netip.PrefixFrom(addr, addr.BitLen()), true
}

// On reports whether the policy applies, kube telling whether the node
// runs Kubernetes (the default's deciding fact).
func (f Firewall) On(kube bool) bool {
	if f.Enabled != nil {
		return *f.Enabled
	}
	return kube
}

// Validate checks every allow entry and returns every problem found, each
// naming the entry and the fix.
func (f Firewall) Validate() error {
	var errs []error
	if f.Enabled != nil && !*f.Enabled && len(f.Allow) > 0 {
		errs = append(errs, fmt.Errorf("allow has %d entries but enabled is false, so they would do nothing (remove them, or set enabled: true)", len(f.Allow)))
	}
	seen := map[FirewallAllow]int{}
	for i, a := range f.Allow {
		field := fmt.Sprintf("allow[%d]", i)
		if a.Port != 0 {
			field = fmt.Sprintf("allow[%d] (port %d/%s)", i, a.Port, a.Protocol())
		}
		switch {
		case a.Port == 0:
			errs = append(errs, fmt.Errorf("%s: port is required (the destination port to admit, 1–65535, e.g. port: 8080)", field))
		case a.Port < 0 || a.Port > 65535:
			errs = append(errs, fmt.Errorf("%s: port %d is not a port (use 1–65535)", field, a.Port))
		}
		if p := a.Protocol(); p != ProtoTCP && p != ProtoUDP {
			errs = append(errs, fmt.Errorf("%s: proto %q is not tcp or udp (write proto: tcp or proto: udp; ICMP is always admitted)", field, a.Proto))
		}
		if a.From != "" {
			_, perr := netip.ParsePrefix(a.From)
			_, aerr := netip.ParseAddr(a.From)
			if perr != nil && aerr != nil {
				errs = append(errs, fmt.Errorf("%s: from %q is not a network in CIDR form or an address (write e.g. from: 10.0.0.0/8 or from: 192.168.1.5)", field, a.From))
			}
		}
		key := FirewallAllow{Port: a.Port, Proto: a.Protocol()}
		if s, ok := a.Source(); ok {
			key.From = s.String()
		}
		if prev, dup := seen[key]; dup {
			errs = append(errs, fmt.Errorf("%s: same as allow[%d] (remove one)", field, prev))
		} else {
			seen[key] = i
		}
	}
	return errors.Join(errs...)
}
