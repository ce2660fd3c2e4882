package qemutests

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/agent/kubeboot"
	"github.com/cairn-edge/cairn/agent/kubenative"
	"github.com/cairn-edge/cairn/agent/kubepki"
	"github.com/cairn-edge/cairn/qemu-tests/qemu"
)

// hostFromGuest is this host's loopback as a guest on QEMU's user
// network reaches it.
const hostFromGuest = "10.0.2.2"

// TestKubernetesAgent joins a node in agent mode to a control plane on
// this host (cairn-kube server, controlPlaneOnly, its API on loopback,
// which the guest reaches as 10.0.2.2, an address the API server's
// certificate does not name: join kubeconfigs verify it for the name
// "kubernetes"). The control plane first registers another node, which
// takes the first pod range, and stops. The node boots and says it cannot
// reach the control plane; once that is back, the node registers under
// the name its join credentials give (the kubeconfig on its ESP overrides
// the one baked from the spec) and goes Ready. A pod of the baked test
// image runs there with an address from the node's own podCIDR, and a
// second pod reaches it through a Service: kube-proxy works with the
// node's credentials. `cairn node` shows an agent, which hands out no
// admin kubeconfig.
func TestKubernetesAgent(t *testing.T) {
	if kubeImage == nil {
		t.Skip("no cairn-kube or cluster images (make kube addons; make test sets CAIRN_TEST_BIN)")
	}
	share(t, everyCore)
	ctx := context.Background()
	cp, err := kubenative.New(filepath.Join(binDir, "linux-amd64", "cairn-kube"), t.TempDir(), kubenative.Tuning{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cp.Kill)
	u, _ := url.Parse(cp.URL)
	server := "https://" + net.JoinHostPort(hostFromGuest, u.Port())
	k := &kubeboot.API{URL: cp.URL, Client: cp.Client}
	t.Cleanup(func() {
		if t.Failed() {
			logEvents(t, k)
		}
	})

	// Another node takes the first pod range, before the agent can
	// register: the agent's pods must come from a range of its own. The
	// control plane grants nodes kube-proxy's rights as a cairn server does.
	if err := cp.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.WaitReady(2 * time.Minute); err != nil {
		t.Fatal(err)
	}
	objs, _ := kubeboot.ParseManifest(kubeboot.NodeProxier)
	if errs := k.ApplyAll(ctx, objs); len(errs) > 0 {
		t.Fatal(errs)
	}
	apply(t, k, "apiVersion: v1\nkind: Node\nmetadata: {name: decoy}\n")
	var decoyCIDR string
	waitFor(t, "a pod range for the decoy node", time.Minute, func() (bool, string) {
		decoyCIDR, err = podCIDR(ctx, k, "decoy")
		return decoyCIDR != "", fmt.Sprint(decoyCIDR, err)
	})
	if err := cp.Stop(time.Minute); err != nil {
		t.Fatal(err)
	}

	// Join credentials as a server node's `cairn node join-kubeconfig`
	// makes them: one baked into the image, one for this node on its ESP.
	dir := t.TempDir()
	baked, esp := filepath.Join(dir, "baked.kubeconfig"), filepath.Join(dir, "esp.kubeconfig")
	for path, name := range map[string]string{baked: "baked-name", esp: "edge-agent"} {
		kc, err := kubepki.JoinKubeconfig(filepath.Join(cp.Dir, "pki"), server, name, kubepki.JoinOptions{})
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(path, kc, 0o600)
	}
	img, err := env.KubeAgentImage("qemu-x86_64", "amd64", dir, server, baked)
	if err != nil {
		t.Fatal(err)
	}
	disk := qemu.CopyImage(t, img.Image)
	os.Truncate(disk, 4<<30)
	espKC, _ := os.ReadFile(esp)
	putOnESP(t, disk, filepath.Base(kubeboot.NodeJoinKubeconfig), string(espKC))

	vm := qemu.StartT(t, qemu.WithArch(qemu.AMD64), qemu.WithDisk(disk), qemu.WithMemory(2048), qemu.WithCPUs(2),
		qemu.WithNetwork(), qemu.WithPortForward(0, api.DefaultPort))
	if _, err := vm.Expect(kubeTimeout, `cairn: warning: kubernetes: cannot reach the control plane at `+server); err != nil {
		t.Fatal(err)
	}
	var st api.Status
	nodeJSON(t, vm, img.NodeConfig, &st, "status")
	if k := st.Kubernetes; k == nil || k.Mode != "agent" || k.Server != server || k.NodeReady || !hasProblem(k, "cannot reach the control plane") {
		t.Errorf("status.kubernetes before the control plane = %+v, want an agent of %s, not ready, with the problem", st.Kubernetes, server)
	}

	// The control plane comes back.
	if err := cp.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.WaitReady(2 * time.Minute); err != nil {
		t.Fatal(err)
	}

	m, err := vm.Expect(kubeTimeout, `cairn: kubernetes ready node=(\S+)`)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kubernetes ready %s after QEMU start", m.At.Round(time.Second))
	if m.Groups[1] != "edge-agent" {
		t.Errorf("node %s, want edge-agent (the ESP's credentials win over the baked ones)", m.Groups[1])
	}
	waitFor(t, "node edge-agent Ready on the control plane", kubeTimeout, func() (bool, string) { return namedNodeReady(ctx, k, "edge-agent") })
	cidr, err := podCIDR(ctx, k, "edge-agent")
	if err != nil {
		t.Fatal(err)
	}
	_, pods, err := net.ParseCIDR(cidr)
	if err != nil || cidr == decoyCIDR {
		t.Fatalf("podCIDR %q (%v), want a range other than the decoy's %s", cidr, err, decoyCIDR)
	}

	apply(t, k, agentWebManifest)
	var web struct {
		Spec   struct{ NodeName string } `json:"spec"`
		Status struct {
			Phase string `json:"phase"`
			PodIP string `json:"podIP"`
		} `json:"status"`
	}
	waitFor(t, "the web pod running", kubeTimeout, func() (bool, string) {
		err := k.Do(ctx, http.MethodGet, "/api/v1/namespaces/default/pods/web", "", nil, &web)
		return err == nil && web.Status.Phase == "Running", fmt.Sprintf("%+v %v", web, err)
	})
	t.Logf("web pod at %s; node edge-agent's podCIDR %s, the decoy's %s", web.Status.PodIP, cidr, decoyCIDR)
	if ip := net.ParseIP(web.Status.PodIP); web.Spec.NodeName != "edge-agent" || ip == nil || !pods.Contains(ip) {
		t.Errorf("web pod on %q at %q, want edge-agent and an address in its podCIDR %s", web.Spec.NodeName, web.Status.PodIP, cidr)
	}
	var svc struct {
		Spec struct {
			ClusterIP string `json:"clusterIP"`
		} `json:"spec"`
	}
	if err := k.Do(ctx, http.MethodGet, "/api/v1/namespaces/default/services/web", "", nil, &svc); err != nil {
		t.Fatal(err)
	}
	apply(t, k, fmt.Sprintf(agentClientManifest, svc.Spec.ClusterIP))
	waitFor(t, "the client pod to fetch from the web Service", kubeTimeout, func() (bool, string) {
		return podSucceeded(ctx, k, "client")
	})

	st = api.Status{} // fields the answer omits must not keep the first answer's values
	nodeJSON(t, vm, img.NodeConfig, &st, "status")
	if k := st.Kubernetes; k == nil || k.Mode != "agent" || k.Server != server || k.NodeName != "edge-agent" || !k.NodeReady || k.Phase != "ready" || k.Version != "v1.36.3" {
		t.Errorf("status.kubernetes = %+v, want a ready v1.36.3 agent edge-agent of %s", st.Kubernetes, server)
	} else if hasProblem(k, "cannot reach") {
		t.Errorf("status.kubernetes.problems = %q: the control plane is reached now", k.Problems)
	} else if k.Pods.Running != 1 || k.Pods.Total != 2 {
		t.Errorf("status.kubernetes.pods = %+v, want web running and client done (the node's credentials list its pods)", k.Pods)
	}
	if out, err := node(t, vm, img.NodeConfig, "kubeconfig"); err == nil || !strings.Contains(out, "agent mode") {
		t.Errorf("cairn node kubeconfig on an agent: %v\n%s", err, out)
	}
	if err := vm.PowerDown(time.Minute); err != nil {
		t.Fatal(err)
	}
}

// agentWebManifest is the test program serving HTTP on the agent node,
// behind a Service.
const agentWebManifest = `
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default, labels: {app: web}}
spec:
  nodeSelector: {kubernetes.io/hostname: edge-agent}
  containers:
  - {name: web, image: cairn.test/hello:1, imagePullPolicy: Never, args: [serve], ports: [{containerPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
`

// agentClientManifest fetches from the Service's address (%s): there is
// no cluster DNS on this control plane.
const agentClientManifest = `
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default}
spec:
  nodeSelector: {kubernetes.io/hostname: edge-agent}
  restartPolicy: OnFailure
  containers:
  - {name: client, image: cairn.test/hello:1, imagePullPolicy: Never, args: [fetch, "http://%s/"]}
`

func hasProblem(k *api.KubernetesStatus, substr string) bool {
	for _, p := range k.Problems {
		if strings.Contains(p, substr) {
			return true
		}
	}
	return false
}

// podCIDR is the node's pod range, "" until it has one.
func podCIDR(ctx context.Context, k *kubeboot.API, name string) (string, error) {
	var n struct {
		Spec struct {
			PodCIDR string `json:"podCIDR"`
		} `json:"spec"`
	}
	err := k.Do(ctx, http.MethodGet, "/api/v1/nodes/"+name, "", nil, &n)
	return n.Spec.PodCIDR, err
}

// namedNodeReady reports whether the node called name is Ready.
func namedNodeReady(ctx context.Context, k *kubeboot.API, name string) (bool, string) {
	var n struct {
		Status struct {
			Conditions []struct{ Type, Status, Message string } `json:"conditions"`
		} `json:"status"`
	}
	if err := k.Do(ctx, http.MethodGet, "/api/v1/nodes/"+name, "", nil, &n); err != nil {
		return false, err.Error()
	}
	for _, c := range n.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == "True", c.Message
		}
	}
	b, _ := json.Marshal(n.Status)
	return false, string(b)
}
