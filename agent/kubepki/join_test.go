package kubepki

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestJoinKubeconfig(t *testing.T) {
	dir := t.TempDir()
	if err := Ensure(dir, opts()); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)
	ca := readCert(t, dir, "ca")
	tests := []struct {
		name, node string
		o          JoinOptions
		wantAfter  time.Time
		wantErr    string
	}{
		{name: "a year", node: "edge-2", o: JoinOptions{Now: now}, wantAfter: now.Add(DefaultLeafValidity)},
		{name: "dotted name, a week", node: "edge-2.site.example", o: JoinOptions{Now: now, Validity: 7 * 24 * time.Hour}, wantAfter: now.Add(7 * 24 * time.Hour)},
		{name: "no longer than the CA", node: "edge-3", o: JoinOptions{Now: now, Validity: 20 * 365 * 24 * time.Hour}, wantAfter: ca.NotAfter},
		{name: "upper case", node: "Edge-2", wantErr: `node name "Edge-2" is not a DNS name`},
		{name: "empty", node: "", wantErr: `node name "" is not a DNS name`},
		{name: "underscore", node: "edge_2", wantErr: "is not a DNS name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := JoinKubeconfig(dir, "https://10.0.0.1:6443", tt.node, tt.o)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var kc struct {
				Clusters []struct {
					Cluster struct {
						Server     string `yaml:"server"`
						ServerName string `yaml:"tls-server-name"`
						CA         string `yaml:"certificate-authority-data"`
					} `yaml:"cluster"`
				} `yaml:"clusters"`
				Users []struct {
					User struct {
						Cert string `yaml:"client-certificate-data"`
					} `yaml:"user"`
				} `yaml:"users"`
			}
			if err := yaml.Unmarshal(data, &kc); err != nil {
				t.Fatalf("%v\n%s", err, data)
			}
			if cl := kc.Clusters[0].Cluster; cl.Server != "https://10.0.0.1:6443" || cl.ServerName != "kubernetes" {
				t.Errorf("cluster %+v, want server https://10.0.0.1:6443 verified as kubernetes", cl)
			}
			der, _ := base64.StdEncoding.DecodeString(kc.Users[0].User.Cert)
			b, _ := pem.Decode(der)
			if b == nil {
				t.Fatal("client-certificate-data holds no PEM")
			}
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if c.Subject.CommonName != "system:node:"+tt.node || !slices.Equal(c.Subject.Organization, []string{"system:nodes"}) {
				t.Errorf("subject %v", c.Subject)
			}
			if err := c.CheckSignatureFrom(ca); err != nil {
				t.Errorf("not signed by the cluster CA: %v", err)
			}
			if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
				t.Errorf("usage %v", c.ExtKeyUsage)
			}
			if !c.NotAfter.Equal(tt.wantAfter.UTC().Truncate(time.Second)) {
				t.Errorf("NotAfter %s, want %s", c.NotAfter, tt.wantAfter)
			}
		})
	}
	if got := changed(before, snapshot(t, dir)); len(got) > 0 {
		t.Errorf("JoinKubeconfig changed %v in the PKI directory", got)
	}
}

func TestJoinKubeconfigNeedsCA(t *testing.T) {
	_, err := JoinKubeconfig(t.TempDir(), "https://10.0.0.1:6443", "edge-2", JoinOptions{})
	if err == nil || !strings.Contains(err.Error(), "only a server node can issue join credentials") {
		t.Errorf("err = %v", err)
	}
}
