// Package config is the node's configuration: the agent's file
// /etc/cairn/agent.yaml in the root slot (network, ntp, services, api,
// kubernetes) and the per-node file on the ESP. The builder writes the
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
}

// API configures the node API.
type API struct {
	// Port is the node API's TCP port (default 7443).
	Port int `yaml:"port,omitempty"`
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
	if c.API.Port < 0 || c.API.Port > 65535 {
		return fmt.Errorf("api.port %d is not a TCP port", c.API.Port)
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
