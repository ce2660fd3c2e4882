// Package config is the node's configuration: the agent's file
// /etc/cairn/agent.yaml in the root slot (network, ntp, services, api,
// kubernetes, firewall) and the per-node file on the ESP. The builder writes the
// agent's file from the image spec; the agent reads it at start. One set of
// types serves both sides, so the spec's keys and the agent's file cannot
// drift apart, and it depends on nothing heavy (no netlink, no containerd
// client): the workstation CLI links it. The packages that act on it
// (network, services, kubeboot, clock) take their part from here.
package config

import (
	"bytes"
	"fmt"
	"os"
	"regexp"

	"github.com/cairn-edge/cairn/agent/clock"
	"github.com/cairn-edge/cairn/agent/contract"
	"gopkg.in/yaml.v3"
)

// Path is where the agent finds its configuration.
const Path = contract.AgentConfig

// NodeFile is the per-node override on the ESP (mounted at /boot): one
// image serves a fleet, each card gets its own hostname and address.
const NodeFile = contract.NodeFile

// Config is the agent's configuration.
type Config struct {
	// Network configures links, addresses, DNS and the hostname.
	Network Network `yaml:"network,omitempty"`
	// Clock names the NTP servers (key ntp).
	Clock clock.Config `yaml:",inline"`
	// Services are the system services, run as containers.
	Services []Service `yaml:"services,omitempty"`
	// API configures the node API.
	API API `yaml:"api,omitempty"`
	// Kubernetes, when set, runs the bundled Kubernetes (cairn-kube).
	Kubernetes *Kubernetes `yaml:"kubernetes,omitempty"`
	// Update configures over-the-air upgrades; without it `cairn node
	// upgrade` is refused.
	Update *Update `yaml:"update,omitempty"`
	// Firewall is the host's input policy (see [Firewall] for the default).
	Firewall Firewall `yaml:"firewall,omitempty"`
}

// FirewallOn reports whether the node applies its host firewall.
func (c Config) FirewallOn() bool { return c.Firewall.On(c.Kubernetes != nil) }

// API configures the node API.
type API struct {
	// Port is the node API's TCP port (default 7443).
	Port int `yaml:"port,omitempty"`
	// Metrics, when set, also serves GET /metrics in plain HTTP, without
	// authentication, on one interface (for a Prometheus that cannot
	// hold a client certificate). Off by default.
	Metrics *PlainMetrics `yaml:"metrics,omitempty"`
}

// PlainMetrics is where the node serves /metrics in plain HTTP.
type PlainMetrics struct {
	// Interface is the link to serve on, e.g. eth0; the socket is bound
	// to the device, so it follows the link's addresses as DHCP changes
	// them, and no other link reaches it.
	Interface string `yaml:"interface"`
	// Port is the TCP port (default DefaultMetricsPort).
	Port int `yaml:"port,omitempty"`
}

// DefaultMetricsPort is the plain metrics port: node_exporter's.
const DefaultMetricsPort = 9100

// linkName is what a Linux interface name may look like (IFNAMSIZ-1).
var linkName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,14}$`)

// validate checks m against the API's port.
func (m *PlainMetrics) validate(apiPort int) error {
	if m == nil {
		return nil
	}
	if !linkName.MatchString(m.Interface) {
		return fmt.Errorf("api.metrics.interface %q is not an interface name (e.g. eth0); it is required", m.Interface)
	}
	if m.Port < 0 || m.Port > 65535 {
		return fmt.Errorf("api.metrics.port %d is not a TCP port", m.Port)
	}
	if apiPort == 0 {
		apiPort = 7443
	}
	if m.Port == apiPort {
		return fmt.Errorf("api.metrics.port %d is the node API's port: pick another (default %d)", m.Port, DefaultMetricsPort)
	}
	return nil
}

// ListenPort is the plain metrics port, DefaultMetricsPort unless set.
func (m *PlainMetrics) ListenPort() int {
	if m.Port == 0 {
		return DefaultMetricsPort
	}
	return m.Port
}

// Validate checks the parts against each other.
func (c Config) Validate() error {
	if err := c.Network.Validate(); err != nil {
		return fmt.Errorf("network: %w", err)
	}
	if err := ValidateServices(c.Services); err != nil {
		return fmt.Errorf("services: %w", err)
	}
	if err := c.Clock.Validate(); err != nil {
		return fmt.Errorf("ntp: %w", err)
	}
	if c.Kubernetes != nil {
		if err := c.Kubernetes.Validate(); err != nil {
			return fmt.Errorf("kubernetes: %w", err)
		}
	}
	if err := c.Update.Validate(); err != nil {
		return fmt.Errorf("update: %w", err)
	}
	if err := c.Firewall.Validate(); err != nil {
		return fmt.Errorf("firewall: %w", err)
	}
	if c.API.Port < 0 || c.API.Port > 65535 {
		return fmt.Errorf("api.port %d is not a TCP port", c.API.Port)
	}
	if err := c.API.Metrics.validate(c.API.Port); err != nil {
		return err
	}
	return nil
}

// Marshal renders the file the builder writes.
func (c Config) Marshal() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# Written by cairn build from the image spec; read by cairn-agent.\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	return b.Bytes(), enc.Close()
}

// Load reads the agent's configuration. A missing file is an empty
// configuration (DHCP on every ethernet link, no services).
func Load(path string) (Config, error) {
	var c Config
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && err.Error() != "EOF" {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
