package kubeboot

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/cairn-edge/cairn/agent/kubepki"
)

// ServingSigner signs kubelets' serving certificates with the cluster CA
// (the controller manager's --cluster-signing-cert-file) once a request is
// approved. Upstream approves none of them by itself.
const ServingSigner = "kubernetes.io/kubelet-serving"

// csrPath lists the certificate signing requests.
const csrPath = "/apis/certificates.k8s.io/v1/certificatesigningrequests"

// csr is the part of a CertificateSigningRequest the approver reads.
type csr struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Request    []byte   `json:"request"` // PEM, base64 in JSON
		SignerName string   `json:"signerName"`
		Username   string   `json:"username"`
		Groups     []string `json:"groups"`
		Usages     []string `json:"usages"`
	} `json:"spec"`
	Status struct {
		Conditions []struct {
			Type string `json:"type"`
		} `json:"conditions"`
	} `json:"status"`
}

// nodeAddresses are a Node's status addresses: names (Hostname,
// InternalDNS, ExternalDNS) and IPs (InternalIP, ExternalIP).
type nodeAddresses struct {
	names, ips []string
}

// servingUsages are the key usages a kubelet asks for (ECDSA keys omit
// key encipherment).
var servingUsages = []string{"digital signature", "key encipherment", "server auth"}

// servingVerdict says why a kubelet-serving request must not be approved,
// "" when it may: it comes from a node's own identity, asks for that node's
// name as subject, a server certificate and nothing else, and names only
// addresses the node reports (node == nil: no such Node). This is the check
// upstream leaves to the cluster's operator (kubeadm's docs: "approve only
// after checking the requested names"), done for them.
func servingVerdict(c *csr, node *nodeAddresses) string {
	nodeName, ok := strings.CutPrefix(c.Spec.Username, kubepki.NodeUserPrefix)
	switch {
	case !ok || nodeName == "":
		return fmt.Sprintf("requested by %q, not a node (system:node:NAME)", c.Spec.Username)
	case !slices.Contains(c.Spec.Groups, kubepki.NodeGroup):
		return fmt.Sprintf("requester %s is not in group %s", c.Spec.Username, kubepki.NodeGroup)
	case node == nil:
		return fmt.Sprintf("no Node %s", nodeName)
	}
	for _, u := range c.Spec.Usages {
		if !slices.Contains(servingUsages, u) {
			return fmt.Sprintf("asks for usage %q (a serving certificate has only %s)", u, strings.Join(servingUsages, ", "))
		}
	}
	if !slices.Contains(c.Spec.Usages, "server auth") {
		return `does not ask for usage "server auth"`
	}
	block, _ := pem.Decode(c.Spec.Request)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return "request is not a PEM CERTIFICATE REQUEST"
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return fmt.Sprintf("request does not parse: %v", err)
	}
	if err := req.CheckSignature(); err != nil {
		return fmt.Sprintf("request signature: %v", err)
	}
	switch {
	case req.Subject.CommonName != c.Spec.Username:
		return fmt.Sprintf("subject %q is not the requester %s", req.Subject.CommonName, c.Spec.Username)
	case !slices.Equal(req.Subject.Organization, []string{kubepki.NodeGroup}):
		return fmt.Sprintf("organization %q is not [%s]", req.Subject.Organization, kubepki.NodeGroup)
	case len(req.EmailAddresses) > 0 || len(req.URIs) > 0:
		return "asks for e-mail or URI names"
	case len(req.DNSNames) == 0 && len(req.IPAddresses) == 0:
		return "names no address"
	}
	for _, d := range req.DNSNames {
		if !slices.Contains(node.names, d) {
			return fmt.Sprintf("name %s is not among node %s's addresses %v", d, nodeName, node.names)
		}
	}
	for _, ip := range req.IPAddresses {
		if !slices.ContainsFunc(node.ips, func(s string) bool { return net.ParseIP(s).Equal(ip) }) {
			return fmt.Sprintf("address %s is not among node %s's addresses %v", ip, nodeName, node.ips)
		}
	}
	return ""
}

// approveServing approves the pending kubelet-serving requests that pass
// servingVerdict, so agent-mode nodes' kubelets get a serving certificate
// from the cluster CA, which the API server checks
// (--kubelet-certificate-authority). A request that does not pass stays
// pending (the node's addresses may not be posted yet; the next poll looks
// again) and is logged once.
func (n *Node) approveServing(ctx context.Context) {
	var list struct {
		Items []json.RawMessage `json:"items"`
	}
	sel := url.Values{"fieldSelector": {"spec.signerName=" + ServingSigner}}
	if err := n.kube.Do(ctx, http.MethodGet, csrPath+"?"+sel.Encode(), "", nil, &list); err != nil {
		n.opts.Log.Warn("kubelet serving certificates: list requests", "err", err)
		return
	}
	for _, raw := range list.Items {
		var c csr
		if err := json.Unmarshal(raw, &c); err != nil || c.Spec.SignerName != ServingSigner || len(c.Status.Conditions) > 0 {
			continue // not ours, or approved, denied or failed already
		}
		why := servingVerdict(&c, n.nodeAddresses(ctx, strings.TrimPrefix(c.Spec.Username, kubepki.NodeUserPrefix)))
		if why != "" {
			if n.csrSkipped == nil {
				n.csrSkipped = map[string]bool{}
			}
			if !n.csrSkipped[c.Metadata.Name] {
				n.csrSkipped[c.Metadata.Name] = true
				n.opts.Log.Warn("kubelet serving certificate request left pending", "csr", c.Metadata.Name, "user", c.Spec.Username, "why", why)
			}
			continue
		}
		var obj map[string]any
		json.Unmarshal(raw, &obj)
		status, _ := obj["status"].(map[string]any)
		if status == nil {
			status = map[string]any{}
			obj["status"] = status
		}
		status["conditions"] = []any{map[string]any{
			"type": "Approved", "status": "True", "reason": "CairnNodeAddresses",
			"message": "cairn-agent: the node's own identity asked for its own addresses",
		}}
		body, _ := json.Marshal(obj)
		if err := n.kube.Do(ctx, http.MethodPut, csrPath+"/"+c.Metadata.Name+"/approval", "application/json", body, nil); err != nil {
			n.opts.Log.Warn("kubelet serving certificates: approve", "csr", c.Metadata.Name, "err", err)
			continue
		}
		n.opts.Log.Info("kubelet serving certificate approved", "csr", c.Metadata.Name, "user", c.Spec.Username)
	}
}

// nodeAddresses reads a Node's status addresses; nil when it cannot.
func (n *Node) nodeAddresses(ctx context.Context, name string) *nodeAddresses {
	var node struct {
		Status struct {
			Addresses []struct{ Type, Address string } `json:"addresses"`
		} `json:"status"`
	}
	if name == "" || strings.Contains(name, "/") {
		return nil
	}
	if err := n.kube.Do(ctx, http.MethodGet, "/api/v1/nodes/"+name, "", nil, &node); err != nil {
		return nil
	}
	a := &nodeAddresses{}
	for _, ad := range node.Status.Addresses {
		switch ad.Type {
		case "Hostname", "InternalDNS", "ExternalDNS":
			a.names = append(a.names, ad.Address)
		case "InternalIP", "ExternalIP":
			a.ips = append(a.ips, ad.Address)
		}
	}
	return a
}
