package kubeboot

import (
	"bytes"
	_ "embed"
	"os"
	"strings"
	"text/template"

	"github.com/cairn-edge/cairn/agent/config"
)

// CoreDNSImage is the cluster DNS image the builder bakes (make addons) and
// containerd's CRI config pins.
const CoreDNSImage = "cairn.local/coredns:1.15.0"

//go:embed coredns.yaml
var corednsManifest string

var corednsTemplate = template.Must(template.New("coredns").Parse(corednsManifest))

// CoreDNS is the cluster DNS manifest for c (its domain and address);
// forward sends other names to the node's resolvers.
func CoreDNS(c config.Kubernetes, forward bool) []byte {
	c = c.WithDefaults()
	var b bytes.Buffer
	err := corednsTemplate.Execute(&b, struct {
		Image, Domain, ClusterDNS string
		Forward                   bool
	}{CoreDNSImage, c.ClusterDomain, c.ClusterDNS, forward})
	if err != nil {
		panic(err) // the template is ours and its inputs are strings
	}
	return b.Bytes()
}

// resolvConf is the node's resolver configuration, which pods with
// dnsPolicy Default (CoreDNS) get.
var resolvConf = "/etc/resolv.conf"

// hasResolvers reports whether the node's resolv.conf names a nameserver.
func hasResolvers() bool {
	data, err := os.ReadFile(resolvConf)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "nameserver" {
			return true
		}
	}
	return false
}
