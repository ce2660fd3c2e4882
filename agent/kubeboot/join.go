package kubeboot

import (
	_ "embed"
	"fmt"
	"path/filepath"

	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/agent/kubepki"
)

// NodeProxier is the ClusterRoleBinding a server applies (with CoreDNS)
// so that nodes' credentials also serve kube-proxy: agent-mode nodes join
// with one client certificate for both (see JoinKubeconfig).
//
//go:embed node-proxier.yaml
var NodeProxier []byte

// JoinKubeconfig is a kubeconfig for the API server at server with a new
// client certificate for the node called node, issued by this server's
// cluster CA: what an agent-mode node joins with (its user is
// system:node:NODE in group system:nodes; see NodeProxier). Agent-mode
// nodes hold no CA and answer api.ErrNoClusterAdmin.
func (n *Node) JoinKubeconfig(node, server string) ([]byte, error) {
	if n.agent != nil {
		return nil, fmt.Errorf("%w: mint join credentials on a server node of %s", api.ErrNoClusterAdmin, n.agent.server)
	}
	return kubepki.JoinKubeconfig(filepath.Join(DataDir, "pki"), server, node, kubepki.JoinOptions{})
}
