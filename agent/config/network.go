package config

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"strings"
)

// Network is the network part of the image spec, the agent configuration
// and the per-node file (see [ApplyNodeFile]).
//
//	hostname: edge-17
//	interfaces:
//	  - name: eth0                 # or a glob: "en*"
//	    addresses: [192.168.1.17/24]
//	    gateway: 192.168.1.1
//	  - name: "wl*"
//	    dhcp: true
//	dns: [192.168.1.1, 9.9.9.9]
//
// With no interfaces listed, every physical ethernet link (not veth,
// bridges, VLANs or tunnels, which Kubernetes creates) gets DHCPv4.
type Network struct {
	// Hostname is set with sethostname(2) and sent to DHCP servers.
	// Empty keeps the kernel's ("(none)" unless the command line sets one).
	Hostname string `yaml:"hostname,omitempty" json:"hostname,omitempty"`
	// Interfaces configure links; a link uses the first entry whose name
	// matches it.
	Interfaces []Interface `yaml:"interfaces,omitempty" json:"interfaces,omitempty"`
	// DNS servers written to resolv.conf before those learned from DHCP.
	DNS []string `yaml:"dns,omitempty" json:"dns,omitempty"`
}

// Interface configures the links whose name matches Name.
type Interface struct {
	// Name is a link name ("eth0") or a shell glob ("en*", "eth*").
	Name string `yaml:"name" json:"name"`
	// DHCP runs a DHCPv4 client on the link. Unset means: DHCP when no
	// static addresses are given. Static addresses and DHCP can be combined.
	DHCP *bool `yaml:"dhcp,omitempty" json:"dhcp,omitempty"`
	// Addresses are static addresses in CIDR form (192.168.1.17/24, fd00::17/64).
	Addresses []string `yaml:"addresses,omitempty" json:"addresses,omitempty"`
	// Gateway is the default route's next hop; it must lie inside the
	// subnet of one of Addresses.
	Gateway string `yaml:"gateway,omitempty" json:"gateway,omitempty"`
	// MTU of the link; 0 keeps the driver's.
	MTU int `yaml:"mtu,omitempty" json:"mtu,omitempty"`
}

// UsesDHCP reports whether the interface runs a DHCPv4 client.
func (i Interface) UsesDHCP() bool {
	if i.DHCP != nil {
		return *i.DHCP
	}
	return len(i.Addresses) == 0
}

// ifNameMax is IFNAMSIZ-1: the kernel's limit on link names.
const ifNameMax = 15

// Validate checks c and returns every problem found, each naming the field.
func (c Network) Validate() error {
	var errs []error
	if c.Hostname != "" {
		if err := validHostname(c.Hostname); err != nil {
			errs = append(errs, err)
		}
	}
	seen := map[string]int{}
	for n, in := range c.Interfaces {
		field := fmt.Sprintf("interfaces[%d]", n)
		if in.Name != "" {
			field = fmt.Sprintf("interfaces[%d] (%s)", n, in.Name)
		}
		if err := in.validate(field); err != nil {
			errs = append(errs, err)
		}
		if prev, dup := seen[in.Name]; dup && in.Name != "" {
			errs = append(errs, fmt.Errorf("%s: name %q is already used by interfaces[%d] (merge the two entries)", field, in.Name, prev))
		} else {
			seen[in.Name] = n
		}
	}
	for n, s := range c.DNS {
		if _, err := netip.ParseAddr(s); err != nil {
			errs = append(errs, fmt.Errorf("dns[%d]: %q is not an IP address (write e.g. 192.168.1.1 or 2620:fe::fe)", n, s))
		}
	}
	return errors.Join(errs...)
}

func (in Interface) validate(field string) error {
	var errs []error
	switch {
	case in.Name == "":
		errs = append(errs, fmt.Errorf("%s: name is required (a link name like eth0 or a glob like \"en*\")", field))
	case len(in.Name) > ifNameMax:
		errs = append(errs, fmt.Errorf("%s: name is %d characters, link names have at most %d", field, len(in.Name), ifNameMax))
	case strings.ContainsAny(in.Name, "/ \t\n:"):
		errs = append(errs, fmt.Errorf("%s: name %q contains '/', ':' or white space, which link names cannot", field, in.Name))
	default:
		if _, err := path.Match(in.Name, ""); err != nil {
			errs = append(errs, fmt.Errorf("%s: name %q is not a valid glob: %v", field, in.Name, err))
		}
	}
	var prefixes []netip.Prefix
	for n, a := range in.Addresses {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: addresses[%d]: %q is not an address in CIDR form (write e.g. 192.168.1.17/24)", field, n, a))
			continue
		}
		if p.Addr() == p.Masked().Addr() && p.Bits() < p.Addr().BitLen()-1 {
			errs = append(errs, fmt.Errorf("%s: addresses[%d]: %q is a network address, not a host address", field, n, a))
			continue
		}
		prefixes = append(prefixes, p)
	}
	if in.Gateway != "" {
		gw, err := netip.ParseAddr(in.Gateway)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: gateway %q is not an IP address", field, in.Gateway))
		case len(in.Addresses) == 0:
			errs = append(errs, fmt.Errorf("%s: gateway %s needs a static address in its subnet (add addresses, or drop gateway to take it from DHCP)", field, in.Gateway))
		case len(prefixes) > 0 && !anyContains(prefixes, gw):
			errs = append(errs, fmt.Errorf("%s: gateway %s is outside the subnet of every address (%s)", field, in.Gateway, strings.Join(in.Addresses, ", ")))
		}
	}
	if in.MTU != 0 && (in.MTU < 68 || in.MTU > 65535) {
		errs = append(errs, fmt.Errorf("%s: mtu %d is outside 68…65535 (0 keeps the driver's)", field, in.MTU))
	}
	return errors.Join(errs...)
}

func anyContains(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// validHostname accepts RFC 1123 host names of at most 64 bytes (the
// kernel's __NEW_UTS_LEN), dots allowed.
func validHostname(h string) error {
	if len(h) > 64 {
		return fmt.Errorf("hostname %q is %d characters, at most 64 are allowed", h, len(h))
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("hostname %q: each dot-separated part must be 1–63 letters, digits or inner dashes", h)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("hostname %q: %q is not allowed (use letters, digits, dashes and dots)", h, r)
			}
		}
	}
	return nil
}

// InterfaceFor returns the first entry of c matching the link name, or,
// when c lists none, the default (DHCP) for physical ethernet links.
func (c Network) InterfaceFor(name string, physicalEther bool) (Interface, bool) {
	if len(c.Interfaces) == 0 {
		return Interface{Name: name}, physicalEther
	}
	for _, in := range c.Interfaces {
		if ok, _ := path.Match(in.Name, name); ok {
			return in, true
		}
	}
	return Interface{}, false
}
