package kubepki

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/cairn-edge/cairn/builder/pki"
)

// NodeGroup is the group of every node's identity; the Node authorizer
// gives it the kubelet's rights on its own objects, and a cairn server
// binds it to system:node-proxier for kube-proxy (agent/kubeboot).
const NodeGroup = "system:nodes"

// NodeUserPrefix starts a node's user name: system:node:<node name>.
const NodeUserPrefix = "system:node:"

// APIServerName is a name every API server certificate of this PKI
// carries, whatever the server's addresses.
const APIServerName = "kubernetes"

// nodeName is a DNS-1123 subdomain, what Kubernetes accepts as a node name.
var nodeName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

// CheckNodeName reports whether name can be a Kubernetes node's name.
func CheckNodeName(name string) error {
	if len(name) > 253 || !nodeName.MatchString(name) {
		return fmt.Errorf("node name %q is not a DNS name of lowercase letters, digits, '-' and '.' (e.g. edge-2)", name)
	}
	return nil
}

// JoinOptions describe a join kubeconfig.
type JoinOptions struct {
	// Validity is how long the certificate lasts; default 1 year. The
	// kubelet does not renew it: mint a new one before it ends.
	Validity time.Duration
	// Now is the time validity is counted from; time.Now() when zero.
	Now time.Time
}

// JoinKubeconfig issues, with the cluster CA in dir (ca.crt and ca.key), a
// client certificate for the node called nodeName (CN
// system:node:<nodeName>, O system:nodes) and returns a self-contained
// kubeconfig for the API server at server: what an agent-mode node runs
// its kubelet and kube-proxy with. Nothing is stored in dir.
//
// The kubeconfig verifies the API server's certificate for the name
// "kubernetes" (tls-server-name), which every API server certificate of
// this PKI carries: a server's address as other nodes reach it (a LAN or
// DHCP address, a port forward) need not be among its names, and only this
// cluster's CA signs for that name.
func JoinKubeconfig(dir, server, nodeName string, o JoinOptions) ([]byte, error) {
	if err := CheckNodeName(nodeName); err != nil {
		return nil, fmt.Errorf("kubepki: %w", err)
	}
	if o.Validity == 0 {
		o.Validity = DefaultLeafValidity
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	ca, err := pki.LoadPair(dir, "ca", false)
	if err != nil {
		return nil, fmt.Errorf("kubepki: %w", err)
	}
	if ca == nil {
		return nil, fmt.Errorf("kubepki: %s has no cluster CA (ca.crt, ca.key): only a server node can issue join credentials", dir)
	}
	notAfter := o.Now.Add(o.Validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	l := leaf{name: "join", cn: NodeUserPrefix + nodeName, orgs: []string{NodeGroup}, usage: clientAuth}
	certPEM, keyPEM, err := issue(ca, l, o.Now.Add(-backdate), notAfter)
	if err != nil {
		return nil, fmt.Errorf("kubepki: join credentials for %s: %w", nodeName, err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return nil, err
	}
	return kubeconfigYAML(server, APIServerName, "node", caPEM, certPEM, keyPEM), nil
}
