package kubeboot

import (
	"bytes"
	_ "embed"
	"text/template"
)

// CoreDNSImage is the cluster DNS image the builder bakes (make addons) and
// containerd's CRI config pins.
const CoreDNSImage = "cairn.local/coredns:1.15.0"

//go:embed coredns.yaml
var corednsManifest string

var corednsTemplate = template.Must(template.New("coredns").Parse(corednsManifest))

// CoreDNS is the cluster DNS manifest for c (its domain and address).
func CoreDNS(c Config) []byte {
	c = c.WithDefaults()
	var b bytes.Buffer
	err := corednsTemplate.Execute(&b, struct{ Image, Domain, ClusterDNS string }{CoreDNSImage, c.ClusterDomain, c.ClusterDNS})
	if err != nil {
		panic(err) // the template is ours and its inputs are strings
	}
	return b.Bytes()
}
