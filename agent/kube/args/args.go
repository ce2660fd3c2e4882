// Package args turns a cairn-kube config into the command lines of the
// upstream components, chosen for a single node with little memory: no
// cloud provider, no leader election (one node, nothing to elect, and no
// lease writes every two seconds), no profiling, no secure ports for the
// controller manager and scheduler (nothing scrapes them; each would run its
// own authentication and authorization caches), only the controllers a
// single node needs. The user's extra flags come last, so they win.
//
// It imports nothing from Kubernetes: what it produces is plain text, tested
// without building a component.
package args

import (
	"fmt"
	"strings"

	"github.com/cairn-edge/cairn/agent/kube/config"
)

// DisabledControllers are the controller manager's controllers a single
// edge node does without (besides those upstream disables by default):
// horizontal autoscaling (needs a metrics API we do not ship), resource
// quota accounting (it watches every resource type; set
// --controllers=*,… in extraArgs to bring it back), dynamic resource
// allocation, storage version migration and other alpha or beta machinery.
var DisabledControllers = []string{
	"horizontal-pod-autoscaler-controller",
	"resourcequota-controller",
	"endpointslice-mirroring-controller",
	"device-taint-eviction-controller",
	"resourceclaim-controller",
	"resourcepoolstatusrequest-controller",
	"storage-version-migrator-controller",
	"storageversion-garbage-collector-controller",
	"selinux-warning-controller",
	"kube-apiserver-serving-clustertrustbundle-publisher-controller",
	"podcertificaterequest-cleaner-controller",
	"podgroup-protection-controller",
	// Type-checks ValidatingAdmissionPolicies for their status only (the
	// policies are enforced without it), holding every API type's OpenAPI
	// schema in memory: about 8 MiB of heap.
	"validatingadmissionpolicy-status-controller",
}

// common are flags every component gets. Logging is set once for the
// whole process (component.Setup), so there are none yet.
func common(*config.Config) []string { return nil }

func withExtra(c *config.Config, component string, a []string) []string {
	return append(a, c.ExtraArgs[component]...)
}

// APIServer is kube-apiserver's command line. It listens on every
// address (no --bind-address): its clients come over loopback (cairn-kube's
// own components, the node agent), over the node address the in-cluster
// Service kubernetes.default is translated to (pods), and over the LAN
// address, which DHCP may change, that agent-mode nodes and kubectl use; a
// single bind address cannot serve all three. The host firewall
// (agent/firewall) admits its port on a server and nowhere else.
func APIServer(c *config.Config) []string {
	a := append(common(c),
		"--etcd-servers=unix://"+c.KineSocket(),
		"--storage-backend=etcd3",
		fmt.Sprintf("--secure-port=%d", c.APIPort),
		"--tls-cert-file="+c.Cert("apiserver.crt"),
		"--tls-private-key-file="+c.Cert("apiserver.key"),
		"--client-ca-file="+c.Cert("ca.crt"),
		"--kubelet-client-certificate="+c.Cert("apiserver-kubelet-client.crt"),
		"--kubelet-client-key="+c.Cert("apiserver-kubelet-client.key"),
		// Logs, exec and port-forward go to kubelets over TLS: check that
		// the other end is the node's kubelet, whose serving certificate
		// the cluster CA issued (agent/kubepki for a server's own kubelet,
		// an approved kubernetes.io/kubelet-serving request for an agent's).
		"--kubelet-certificate-authority="+c.Cert("ca.crt"),
		"--service-account-key-file="+c.Cert("sa.pub"),
		"--service-account-signing-key-file="+c.Cert("sa.key"),
		"--service-account-issuer=https://kubernetes.default.svc."+c.ClusterDomain,
		"--api-audiences=https://kubernetes.default.svc."+c.ClusterDomain,
		"--service-cluster-ip-range="+c.ServiceCIDR,
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--allow-privileged=true",
		"--anonymous-auth=false",
		"--enable-bootstrap-token-auth=false",
		"--kubelet-preferred-address-types=InternalIP,Hostname",
		"--profiling=false",
		"--event-ttl=1h",
		// API Priority and Fairness shares a busy server among many
		// tenants; one node has a handful of clients, and the classic
		// max-in-flight limits suffice. Off, it saves its configuration
		// controller, its watches and its queues.
		"--enable-priority-and-fairness=false",
	)
	if c.NodeIP != "" {
		a = append(a, "--advertise-address="+c.NodeIP)
	}
	return withExtra(c, config.APIServer, a)
}

// ControllerManager is kube-controller-manager's command line.
func ControllerManager(c *config.Config) []string {
	a := append(common(c),
		"--kubeconfig="+c.KubeconfigFor("controller-manager"),
		"--leader-elect=false",
		"--secure-port=0",
		"--profiling=false",
		"--controllers=*,-"+strings.Join(DisabledControllers, ",-"),
		"--cluster-signing-cert-file="+c.Cert("ca.crt"),
		"--cluster-signing-key-file="+c.Cert("ca.key"),
		"--root-ca-file="+c.Cert("ca.crt"),
		"--service-account-private-key-file="+c.Cert("sa.key"),
		// Each controller acts as its own service account, with the
		// bootstrap roles made for it (system:controller:…); the controller
		// manager's own role is not meant to cover them.
		"--use-service-account-credentials=true",
		"--allocate-node-cidrs=true",
		"--cluster-cidr="+c.ClusterCIDR,
		"--service-cluster-ip-range="+c.ServiceCIDR,
		"--terminated-pod-gc-threshold=500",
	)
	return withExtra(c, config.ControllerManager, a)
}

// Scheduler is kube-scheduler's command line.
func Scheduler(c *config.Config) []string {
	a := append(common(c),
		"--kubeconfig="+c.KubeconfigFor("scheduler"),
		"--leader-elect=false",
		"--secure-port=0",
		"--profiling=false",
	)
	return withExtra(c, config.Scheduler, a)
}

// KubeletConfigPath is where cairn-kube writes the kubelet's configuration
// file (KubeletConfig's document).
func KubeletConfigPath(c *config.Config) string {
	return c.KubeletRoot() + "/config.json"
}

// Kubelet is the kubelet's command line: the flags that are not part of
// its configuration file (KubeletConfig), plus the user's.
func Kubelet(c *config.Config, kubeconfig string) []string {
	a := append(common(c),
		"--config="+KubeletConfigPath(c),
		"--kubeconfig="+kubeconfig,
		"--hostname-override="+c.NodeName,
		"--root-dir="+c.KubeletRoot(),
		"--cert-dir="+c.KubeletRoot()+"/pki",
	)
	if c.NodeIP != "" {
		a = append(a, "--node-ip="+c.NodeIP)
	}
	return withExtra(c, config.Kubelet, a)
}

// KubeletConfig is the kubelet's configuration file (a
// kubelet.config.k8s.io/v1beta1 KubeletConfiguration, as JSON).
// servingCert is false when CertDir has no kubelet-serving.crt: the kubelet
// then asks the cluster CA for its serving certificate (serverTLSBootstrap).
func KubeletConfig(c *config.Config, servingCert bool) map[string]any {
	k := map[string]any{
		"apiVersion": "kubelet.config.k8s.io/v1beta1",
		"kind":       "KubeletConfiguration",
		// cgroupfs: there is no systemd on a Cairn node; cairn-init
		// mounts cgroup v2 and the kubelet finds it.
		"cgroupDriver":             "cgroupfs",
		"containerRuntimeEndpoint": "unix://" + c.ContainerdSocket,
		"failSwapOn":               false,
		// No static pods: cairn-kube itself runs the control plane.
		"staticPodPath":      "",
		"clusterDNS":         []string{c.ClusterDNS},
		"clusterDomain":      c.ClusterDomain,
		"readOnlyPort":       0,
		"healthzBindAddress": "127.0.0.1",
		"authentication": map[string]any{
			"anonymous": map[string]any{"enabled": false},
			"webhook":   map[string]any{"enabled": true},
			"x509":      map[string]any{"clientCAFile": c.Cert("ca.crt")},
		},
		"authorization": map[string]any{"mode": "Webhook"},
		// Small disks: evict before the disk is full, collect images early.
		"evictionHard": map[string]string{
			"memory.available":  "50Mi",
			"nodefs.available":  "5%",
			"nodefs.inodesFree": "5%",
			"imagefs.available": "5%",
		},
		"imageGCHighThresholdPercent": 80,
		"imageGCLowThresholdPercent":  70,
		"maxPods":                     110,
		"enableProfilingHandler":      false,
		"enableDebuggingHandlers":     true, // logs, exec, port-forward
		"serializeImagePulls":         true,
		"containerLogMaxSize":         "5Mi",
		"containerLogMaxFiles":        2,
		"resolvConf":                  "/etc/resolv.conf",
	}
	if c.NodeIP != "" {
		// The API server calls the kubelet at the node's InternalIP, and
		// pods reach that address over the pod bridge: nothing needs the
		// kubelet's API on the pod bridge's or any other address.
		k["address"] = c.NodeIP
	}
	if servingCert {
		k["tlsCertFile"] = c.Cert("kubelet-serving.crt")
		k["tlsPrivateKeyFile"] = c.Cert("kubelet-serving.key")
	} else {
		// No certificate from the node agent (an agent-mode node): ask the
		// cluster for one (a kubernetes.io/kubelet-serving request, which
		// the server's node agent approves for the node's own addresses)
		// rather than sign one ourselves, which the API server, checking
		// with --kubelet-certificate-authority, would refuse.
		k["serverTLSBootstrap"] = true
	}
	return k
}

// KubeProxy is kube-proxy's command line: nftables mode (it runs the nft
// binary), no conntrack sysctl changes (the kernel defaults suit a small
// node, and the sysctls may be read-only where it runs).
func KubeProxy(c *config.Config, kubeconfig string) []string {
	a := append(common(c),
		"--proxy-mode=nftables",
		"--kubeconfig="+kubeconfig,
		"--hostname-override="+c.NodeName,
		"--cluster-cidr="+c.ClusterCIDR,
		"--healthz-bind-address=127.0.0.1:10256",
		"--metrics-bind-address=127.0.0.1:10249",
		"--conntrack-max-per-core=0",
		"--profiling=false",
	)
	return withExtra(c, config.KubeProxy, a)
}
