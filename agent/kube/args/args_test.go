package args

import (
	"slices"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent/kube/config"
)

func testConfig(t *testing.T, doc string) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte("dataDir: /d\nnodeName: n1\n" + doc))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// flag returns the value of --name in a, and whether it is there; the last
// one wins, as in pflag.
func flag(a []string, name string) (string, bool) {
	v, ok := "", false
	for _, s := range a {
		if k, val, _ := strings.Cut(s, "="); k == "--"+name {
			v, ok = val, true
		}
	}
	return v, ok
}

func TestFlags(t *testing.T) {
	c := testConfig(t, "nodeIP: 192.168.1.10\napiPort: 7443\nextraArgs:\n  kube-apiserver: [--profiling=true]\n")
	tests := []struct {
		component string
		args      []string
		name      string
		want      string // "" with absent: the flag must not be there
		absent    bool
	}{
		{"apiserver", APIServer(c), "etcd-servers", "unix:///d/kine.sock", false},
		{"apiserver", APIServer(c), "secure-port", "7443", false},
		{"apiserver", APIServer(c), "advertise-address", "192.168.1.10", false},
		{"apiserver", APIServer(c), "tls-cert-file", "/d/pki/apiserver.crt", false},
		{"apiserver", APIServer(c), "kubelet-certificate-authority", "/d/pki/ca.crt", false},
		{"apiserver (every address)", APIServer(c), "bind-address", "", true},
		{"apiserver", APIServer(c), "service-account-issuer", "https://kubernetes.default.svc.cluster.local", false},
		{"apiserver (extra wins)", APIServer(c), "profiling", "true", false},
		{"controller-manager", ControllerManager(c), "leader-elect", "false", false},
		{"controller-manager", ControllerManager(c), "cluster-signing-key-file", "/d/pki/ca.key", false},
		{"controller-manager", ControllerManager(c), "kubeconfig", "/d/kubeconfig/controller-manager.kubeconfig", false},
		{"scheduler", Scheduler(c), "secure-port", "0", false},
		{"kubelet", Kubelet(c, "/k"), "kubeconfig", "/k", false},
		{"kubelet", Kubelet(c, "/k"), "config", "/d/kubelet/config.json", false},
		{"kubelet", Kubelet(c, "/k"), "node-ip", "192.168.1.10", false},
		{"kube-proxy", KubeProxy(c, "/p"), "proxy-mode", "nftables", false},
		{"kube-proxy", KubeProxy(c, "/p"), "cluster-cidr", "10.42.0.0/16", false},
	}
	for _, tt := range tests {
		t.Run(tt.component+"/"+tt.name, func(t *testing.T) {
			got, ok := flag(tt.args, tt.name)
			if tt.absent {
				if ok {
					t.Errorf("--%s=%s is set", tt.name, got)
				}
				return
			}
			if !ok || got != tt.want {
				t.Errorf("--%s = %q (set: %v), want %q", tt.name, got, ok, tt.want)
			}
		})
	}
}

func TestNoNodeIP(t *testing.T) {
	c := testConfig(t, "")
	for name, a := range map[string][]string{"apiserver": APIServer(c), "kubelet": Kubelet(c, "/k")} {
		for _, f := range []string{"advertise-address", "node-ip"} {
			if v, ok := flag(a, f); ok {
				t.Errorf("%s: --%s=%s without a nodeIP", name, f, v)
			}
		}
	}
}

func TestControllers(t *testing.T) {
	v, _ := flag(ControllerManager(testConfig(t, "")), "controllers")
	parts := strings.Split(v, ",")
	if parts[0] != "*" {
		t.Errorf("--controllers=%s does not start with *", v)
	}
	for _, c := range []string{"-resourcequota-controller", "-horizontal-pod-autoscaler-controller"} {
		if !slices.Contains(parts, c) {
			t.Errorf("--controllers=%s lacks %s", v, c)
		}
	}
}

func TestKubeletConfig(t *testing.T) {
	c := testConfig(t, "")
	tests := []struct {
		serving bool
		key     string
		want    any
	}{
		{false, "cgroupDriver", "cgroupfs"},
		{false, "failSwapOn", false},
		{false, "containerRuntimeEndpoint", "unix:///run/containerd/containerd.sock"},
		{false, "staticPodPath", ""},
		{false, "tlsCertFile", nil},
		{true, "tlsCertFile", "/d/pki/kubelet-serving.crt"},
		{true, "serverTLSBootstrap", nil},
		{false, "serverTLSBootstrap", true},
		{false, "address", nil}, // no nodeIP: the kubelet's default
	}
	for _, tt := range tests {
		got := KubeletConfig(c, tt.serving)[tt.key]
		if got != tt.want {
			t.Errorf("KubeletConfig(serving=%v)[%s] = %v, want %v", tt.serving, tt.key, got, tt.want)
		}
	}
	withIP := testConfig(t, "nodeIP: 10.254.0.1\n")
	if got := KubeletConfig(withIP, true)["address"]; got != "10.254.0.1" {
		t.Errorf("address = %v, want the node IP 10.254.0.1", got)
	}
	if got := KubeletConfig(c, false)["clusterDNS"].([]string); !slices.Equal(got, []string{"10.43.0.10"}) {
		t.Errorf("clusterDNS = %v", got)
	}
}
