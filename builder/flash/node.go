package flash

import (
	"errors"
	"fmt"

	"github.com/cairn-edge/cairn/agent/config"
	"github.com/cairn-edge/cairn/agent/contract"
	"gopkg.in/yaml.v3"
)

// Node is what `cairn flash --hostname --address` puts in the per-node
// file: the fields of the agent's [config.Network] a node overrides.
type Node struct {
	// Hostname is the node's host name.
	Hostname string
	// Interface is the link the addresses go on (a name or a glob).
	Interface string
	// Addresses are static addresses in CIDR form; Gateway the default
	// route's next hop; DNS the name servers.
	Addresses []string
	Gateway   string
	DNS       []string
}

// NodeFile renders n as the per-node file (contract.NodeFileName) in the
// format the agent reads, and checks it with the agent's own parser.
func NodeFile(n Node) ([]byte, error) {
	net := config.Network{Hostname: n.Hostname, DNS: n.DNS}
	if len(n.Addresses) > 0 || n.Gateway != "" {
		if n.Interface == "" {
			return nil, errors.New("an address needs the interface it goes on (pass --interface NAME, e.g. eth0)")
		}
		net.Interfaces = []config.Interface{{Name: n.Interface, Addresses: n.Addresses, Gateway: n.Gateway}}
	}
	b, err := yaml.Marshal(net)
	if err != nil {
		return nil, err
	}
	b = append([]byte("# "+contract.NodeFileName+": this node's settings over the image's (written by cairn flash)\n"), b...)
	if err := CheckNodeFile(b); err != nil {
		return nil, err
	}
	return b, nil
}

// CheckNodeFile checks a per-node file as the agent will read it, so a
// file the node would ignore is refused before the card is written.
func CheckNodeFile(data []byte) error {
	if _, err := config.ParseNodeFile(data); err != nil {
		return fmt.Errorf("per-node file: %w", err)
	}
	return nil
}
