package kubeboot

import (
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent/config"
)

func TestParseManifest(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string // Object.String()
		err      string
	}{
		{"one", "apiVersion: v1\nkind: Namespace\nmetadata: {name: edge}\n", []string{"Namespace edge"}, ""},
		{"several and empty docs", "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: x}\n---\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n", []string{"ConfigMap x/a", "Deployment web"}, ""},
		{"json", `{"apiVersion":"v1","kind":"Service","metadata":{"name":"s"}}`, []string{"Service s"}, ""},
		{"list", "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Secret, metadata: {name: s}}\n", []string{"Secret s"}, ""},
		{"no kind", "apiVersion: v1\nmetadata: {name: a}\n", nil, "line 1: document has no apiVersion or kind"},
		{"no name", "apiVersion: v1\nkind: Pod\nmetadata: {generateName: a-}\n", nil, "has no metadata.name"},
		{"scalar", "---\nhello\n", nil, "must be a mapping"},
		{"bad yaml", "apiVersion: v1\nkind: [\n", nil, "not YAML"},
		{"list without items", "apiVersion: v1\nkind: List\n", nil, "has no items list"},
		{"second doc bad", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\nkind: Pod\n", nil, "line 5:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := ParseManifest([]byte(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range objs {
				got = append(got, o.String())
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("objects = %v, want %v", got, tt.want)
			}
		})
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte("apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Secret, metadata: {name: s}}\n"))
	f.Add([]byte("---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: x}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, err := ParseManifest(data)
		if err != nil {
			return
		}
		for _, o := range objs {
			if o.APIVersion == "" || o.Kind == "" || o.Name == "" {
				t.Fatalf("accepted an incomplete object %+v", o)
			}
		}
	})
}

func TestCoreDNSManifest(t *testing.T) {
	if strings.Contains(string(CoreDNS(config.Kubernetes{}, false)), "forward .") {
		t.Error("a node without resolvers gets a forward")
	}
	objs, err := ParseManifest(CoreDNS(config.Kubernetes{ClusterDNS: "10.43.0.53", ClusterDomain: "edge.local"}, true))
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.Kind)
	}
	if got := strings.Join(kinds, " "); got != "ServiceAccount ClusterRole ClusterRoleBinding ConfigMap Deployment Service" {
		t.Errorf("kinds = %s", got)
	}
	svc := objs[len(objs)-1].Doc["spec"].(map[string]any)
	if svc["clusterIP"] != "10.43.0.53" {
		t.Errorf("clusterIP = %v", svc["clusterIP"])
	}
	if cf := objs[3].Doc["data"].(map[string]any)["Corefile"].(string); !strings.Contains(cf, "kubernetes edge.local in-addr.arpa") || !strings.Contains(cf, "forward . /etc/resolv.conf") {
		t.Errorf("Corefile:\n%s", cf)
	}
}
