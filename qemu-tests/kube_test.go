package qemutests

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/agent/boot/datafs/datafstest"
	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/agent/kubeboot"
	"github.com/cairn-edge/cairn/builder/build"
	"github.com/cairn-edge/cairn/qemu-tests/doccmd"
	"github.com/cairn-edge/cairn/qemu-tests/qemu"
)

// kubeImage is an x86_64 image running the bundled Kubernetes with the
// test program baked as image cairn.test/hello:1; made by TestMain when
// cairn-kube and the cluster images are there.
var kubeImage *build.Result

// kubeDisk is a copy of kubeImage grown to 4 GiB.
func kubeDisk(t *testing.T) string {
	disk := qemu.CopyImage(t, kubeImage.Image)
	os.Truncate(disk, 4<<30)
	return disk
}

// kubeNodeOptions are the QEMU options of a Kubernetes test node on disk
// (kubeDisk): 2 GiB of memory, 2 CPUs, an isolated network with the node
// API and the API server forwarded.
func kubeNodeOptions(disk string, more ...qemu.Option) []qemu.Option {
	return append([]qemu.Option{qemu.WithArch(qemu.AMD64), qemu.WithDisk(disk), qemu.WithMemory(2048), qemu.WithCPUs(2),
		qemu.WithIsolatedNetwork(), qemu.WithPortForward(0, api.DefaultPort), qemu.WithPortForward(0, kubeAPIPort)}, more...)
}

// kubeTimeout bounds a Kubernetes milestone under TCG.
const kubeTimeout = 6 * time.Minute

// kubeAPIPort is the API server's port in the guest.
const kubeAPIPort = 6443

// TestKubernetes boots a node on an isolated network (nothing reachable
// but the forwarded ports), waits for `cairn: kubernetes ready`, sees the
// node Ready through the kubeconfig from `cairn node kubeconfig`, and the
// cluster's state in `cairn node status`; runs a Deployment of the baked
// test image behind a Service that a pod reaches by DNS name; kills
// cairn-kube from a pod and sees the node Ready again; upgrades it over
// the air and finds the Deployment back; then feeds it bad input
// (kubeBadInput). One guest for the whole story: a Kubernetes boot under
// TCG takes minutes.
func TestKubernetes(t *testing.T) {
	if kubeImage == nil {
		t.Skip("no cairn-kube or cluster images (make kube addons; make test sets CAIRN_TEST_BIN)")
	}
	share(t, everyCore)
	// A registry on the host, which the isolated guest reaches as
	// 10.0.2.100:5000, for the upgrade at the end.
	r := newUpgradeRig(t)
	r.guest = "10.0.2.100:5000"
	disk := kubeDisk(t)
	opts := kubeNodeOptions(disk, qemu.WithGuestReboot(), qemu.WithGuestForward(r.guest, r.registry))
	vm := qemu.StartT(t, opts...)
	// Whatever the node went through, a clean power-off leaves CAIRN-DATA,
	// the cluster's state, clean: e2fsck -fn and dumpe2fs find nothing.
	defer func() {
		if !t.Failed() {
			powerOffClean(t, vm, disk)
		}
	}()
	m, err := vm.Expect(kubeTimeout, `cairn: kubernetes ready`)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kubernetes ready %s after QEMU start", m.At.Round(time.Second))

	kc, err := node(t, vm, kubeImage.NodeConfig, "kubeconfig", "--kube-server", fmt.Sprintf("https://127.0.0.1:%d", vm.HostPort(kubeAPIPort)))
	if err != nil {
		t.Fatalf("cairn node kubeconfig: %v\n%s", err, kc)
	}
	// The Kubernetes node commands README.md and docs/ show work as shown.
	runDocumented(t, doccmd.KubernetesTest, vm, kubeImage.NodeConfig)
	k := kubeClient(t, []byte(kc))
	ctx := context.Background()
	t.Cleanup(func() {
		if t.Failed() {
			logEvents(t, k)
		}
	})
	waitFor(t, "node Ready", kubeTimeout, func() (bool, string) { return nodeReady(ctx, k) })

	// The agent applied the cluster DNS, after the node was ready.
	waitFor(t, "the coredns Deployment applied", time.Minute, func() (bool, string) {
		err := k.Do(ctx, http.MethodGet, "/apis/apps/v1/namespaces/kube-system/deployments/coredns", "", nil, nil)
		return err == nil, fmt.Sprint(err)
	})

	// A Deployment of the baked test image behind a Service, which a pod
	// reaches by its DNS name.
	apply(t, k, webManifest)
	waitFor(t, "the client pod to fetch from the web Service by name", kubeTimeout, func() (bool, string) {
		return podSucceeded(ctx, k, "client")
	})
	if logs, err := kubeGetText(ctx, k, "/api/v1/namespaces/default/pods/client/log"); err != nil || !strings.Contains(logs, "hello from cairn") {
		t.Fatalf("client log (%v):\n%s", err, logs)
	}
	// That log came from the kubelet, bound to the node's address, whose
	// serving certificate the API server checked. From the LAN, only
	// what the firewall admits answers.
	checkFirewall(t, vm, k)

	var st api.Status
	nodeJSON(t, vm, kubeImage.NodeConfig, &st, "status")
	if k := st.Kubernetes; k == nil || !k.NodeReady || k.Version != "v1.36.3" || k.Mode != "server" || k.NodeName != st.Hostname {
		t.Errorf("status.kubernetes = %+v, want a ready v1.36.3 server node named %s", st.Kubernetes, st.Hostname)
	} else if len(k.Problems) > 0 {
		t.Errorf("status.kubernetes.problems = %q, want none (images imported, manifests applied)", k.Problems)
	}
	if !regexp.MustCompile(`^cairn-[0-9a-f]{6}$`).MatchString(st.Hostname) {
		t.Errorf("hostname %q, want cairn- and six hex digits (the default)", st.Hostname)
	}

	// Killed from a privileged pod in the host's PID namespace, cairn-kube
	// is restarted and the node comes back Ready.
	apply(t, k, killManifest)
	if _, err := vm.Expect(kubeTimeout, `cairn-kube exited \(signal: killed\)`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "node Ready after cairn-kube was killed", kubeTimeout, func() (bool, string) { return nodeReady(ctx, k) })

	// Upgraded over the air to 0.4.0 (a reboot into slot b, the gate
	// waiting for the node Ready and CoreDNS): the cluster's state is
	// still there.
	ref := func(version string) string { return r.guest + "/cairn/upgrade:kube-" + version }
	kubeRelease := func(version, update string) {
		spec, err := env.KubeSpec("amd64", r.dir, version, update)
		if err != nil {
			t.Fatal(err)
		}
		r.push(spec, "qemu-x86_64", "kube-"+version)
	}
	kubeRelease("0.4.0", "")
	if out, err := node(t, vm, kubeImage.NodeConfig, "upgrade", ref("0.4.0"), "--wait", "20m"); err != nil || !strings.Contains(out, "committed: slot b runs version 0.4.0") {
		t.Fatalf("cairn node upgrade to 0.4.0: %v\n%s", err, out)
	}
	for _, line := range []string{`datastore snapshot taken before the trial`, `cairn: upgrade trial slot=b version=0\.4\.0`, `cairn: kubernetes ready`, `cairn: upgrade committed slot=b`} {
		if _, err := vm.Expect(time.Second, line); err != nil {
			t.Error(err)
		}
	}
	k = kubeAt(t, vm)
	waitFor(t, "the web Deployment still there, with its ready replica, on 0.4.0", kubeTimeout, func() (bool, string) { return deploymentReady(ctx, k, "web") })

	if os.Getenv("CAIRN_TEST_FULL") != "" {
		kubeRollback(t, vm, kubeRelease, ref)
	}

	// What goes wrong on a box nobody watches, on the same node.
	vm = kubeBadInput(t, vm, opts)
}

// kubeRollback (make test-full) upgrades TestKubernetes's node on vm, on
// 0.4.0 in slot b, to 0.5.0, whose gate fails (a check nothing answers):
// it rolls back to 0.4.0, and the datastore as it was before the trial is
// restored: what the trial wrote is gone, the Deployment is there.
func kubeRollback(t *testing.T, vm *qemu.VM, kubeRelease func(version, update string), ref func(version string) string) {
	ctx := context.Background()
	kubeRelease("0.5.0", "  gateTimeout: 4m\n  checks: [{tcp: \"127.0.0.1:9\"}]\n")
	done := make(chan string, 1)
	go func() {
		out, _ := node(t, vm, kubeImage.NodeConfig, "upgrade", ref("0.5.0"), "--wait", "30m")
		done <- out
	}()
	if _, err := vm.Expect(10*time.Minute, `cairn: upgrade trial slot=a version=0\.5\.0`); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.Expect(kubeTimeout, `cairn: kubernetes ready`); err != nil {
		t.Fatal(err)
	}
	k := kubeAt(t, vm)
	apply(t, k, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: written-in-trial, namespace: default}\ndata: {release: 0.5.0}\n")
	if out := <-done; !strings.Contains(out, "rolled back to slot b (version 0.4.0)") {
		t.Fatalf("cairn node upgrade to 0.5.0, whose gate fails:\n%s", out)
	}
	for _, line := range []string{`cairn: upgrade gate failed slot=a`, `datastore restored from the snapshot taken before the trial`, `cairn: rollback to slot=b reason=health gate failed`, `cairn: kubernetes ready`} {
		if _, err := vm.Expect(kubeTimeout, line); err != nil {
			t.Fatal(err)
		}
	}
	k = kubeAt(t, vm)
	waitFor(t, "the web Deployment ready on 0.4.0 after the rollback", kubeTimeout, func() (bool, string) { return deploymentReady(ctx, k, "web") })
	if err := k.Do(ctx, http.MethodGet, "/api/v1/namespaces/default/configmaps/written-in-trial", "", nil, nil); err == nil {
		t.Error("the ConfigMap written during the rolled-back trial is still there: the datastore was not restored")
	}
	var st api.Status
	nodeJSON(t, vm, kubeImage.NodeConfig, &st, "status")
	if st.Version != "0.4.0" || st.Upgrade == nil || st.Upgrade.Phase != "rolled back" || !strings.Contains(st.Upgrade.Reason, "127.0.0.1:9") {
		t.Errorf("status after the rollback: version %s, upgrade %+v", st.Version, st.Upgrade)
	}
}

// powerOffClean powers vm off through the power button and checks that
// CAIRN-DATA on disk passes e2fsck -fn with no error state, and that the
// console had no EXT4-fs error.
func powerOffClean(t *testing.T, vm *qemu.VM, disk string) {
	t.Helper()
	if err := vm.PowerDown(2 * time.Minute); err != nil {
		t.Fatal(err)
	}
	if i := strings.Index(vm.Console(), "EXT4-fs error"); i >= 0 {
		t.Errorf("console: %s", lineAt(vm.Console(), i))
	}
	if err := datafstest.Clean(fmt.Sprintf("%s?offset=%d", disk, partitionStart(t, disk, contract.LabelData))); err != nil {
		t.Errorf("CAIRN-DATA after a clean power-off: %v", err)
	}
}

// kubeAt is a client of vm's API server, through the kubeconfig `cairn
// node kubeconfig` gives.
func kubeAt(t *testing.T, vm *qemu.VM) *kubeboot.API {
	t.Helper()
	kc, err := node(t, vm, kubeImage.NodeConfig, "kubeconfig", "--kube-server", fmt.Sprintf("https://127.0.0.1:%d", vm.HostPort(kubeAPIPort)))
	if err != nil {
		t.Fatalf("cairn node kubeconfig: %v\n%s", err, kc)
	}
	return kubeClient(t, []byte(kc))
}

// deploymentReady reports whether the Deployment name in default has its
// one replica ready.
func deploymentReady(ctx context.Context, k *kubeboot.API, name string) (bool, string) {
	var dep struct {
		Status struct {
			ReadyReplicas int `json:"readyReplicas"`
		} `json:"status"`
	}
	err := k.Do(ctx, http.MethodGet, "/apis/apps/v1/namespaces/default/deployments/"+name, "", nil, &dep)
	return err == nil && dep.Status.ReadyReplicas == 1, fmt.Sprintf("%+v %v", dep.Status, err)
}

const webManifest = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: cairn.test/hello:1, imagePullPolicy: Never, args: [serve], ports: [{containerPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default}
spec:
  restartPolicy: OnFailure
  containers:
  - {name: client, image: cairn.test/hello:1, imagePullPolicy: Never, args: [fetch, "http://web.default.svc.cluster.local/"]}
`

const killManifest = `
apiVersion: v1
kind: Pod
metadata: {name: killer, namespace: default}
spec:
  hostPID: true
  restartPolicy: Never
  containers:
  - name: killer
    image: cairn.test/hello:1
    imagePullPolicy: Never
    args: [kill, cairn-kube]
    securityContext: {privileged: true}
`

func apply(t *testing.T, k *kubeboot.API, manifest string) {
	t.Helper()
	objs, err := kubeboot.ParseManifest([]byte(manifest))
	if err != nil {
		t.Fatal(err)
	}
	// Server-side apply is idempotent: a request the API server of a
	// loaded TCG guest answers too late for the client is sent again.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		errs := k.ApplyAll(context.Background(), objs)
		if len(errs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("apply: %v", errs)
		}
		t.Logf("apply: %v; again", errs)
		time.Sleep(5 * time.Second)
	}
}

func podSucceeded(ctx context.Context, k *kubeboot.API, name string) (bool, string) {
	return podPhase(ctx, k, name, "Succeeded")
}

// podPhase reports whether the pod name in default is in phase want, and
// the phase (or the error).
func podPhase(ctx context.Context, k *kubeboot.API, name, want string) (bool, string) {
	var pod struct {
		Status struct {
			Phase string `json:"phase"`
		} `json:"status"`
	}
	if err := k.Do(ctx, http.MethodGet, "/api/v1/namespaces/default/pods/"+name, "", nil, &pod); err != nil {
		return false, err.Error()
	}
	return pod.Status.Phase == want, pod.Status.Phase
}

// kubeGetText GETs a text resource (a pod's log).
func kubeGetText(ctx context.Context, k *kubeboot.API, path string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.URL+path, nil)
	if err != nil {
		return "", err
	}
	resp, err := k.Client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("%s: %s", path, resp.Status)
	}
	return string(b), err
}

// kubeClient makes an API client from a kubeconfig (its first cluster and user).
func kubeClient(t *testing.T, data []byte) *kubeboot.API {
	t.Helper()
	var kc struct {
		Clusters []struct {
			Cluster struct {
				Server string `yaml:"server"`
				CA     string `yaml:"certificate-authority-data"`
			} `yaml:"cluster"`
		} `yaml:"clusters"`
		Users []struct {
			User struct {
				Cert string `yaml:"client-certificate-data"`
				Key  string `yaml:"client-key-data"`
			} `yaml:"user"`
		} `yaml:"users"`
	}
	if err := yaml.Unmarshal(data, &kc); err != nil || len(kc.Clusters) == 0 || len(kc.Users) == 0 {
		t.Fatalf("kubeconfig (%v):\n%s", err, data)
	}
	dec := func(s string) []byte {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("kubeconfig: %v", err)
		}
		return b
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(dec(kc.Clusters[0].Cluster.CA))
	cert, err := tls.X509KeyPair(dec(kc.Users[0].User.Cert), dec(kc.Users[0].User.Key))
	if err != nil {
		t.Fatal(err)
	}
	return &kubeboot.API{URL: kc.Clusters[0].Cluster.Server, Client: &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: "localhost"},
	}}}
}

// waitFor polls cond every 3 s until it holds or timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	start := time.Now()
	var last string
	for time.Since(start) < timeout {
		var ok bool
		if ok, last = cond(); ok {
			t.Logf("%s after %s", what, time.Since(start).Round(time.Second))
			return
		}
		time.Sleep(3 * time.Second)
	}
	t.Fatalf("no %s within %s; last: %s", what, timeout, last)
}

func nodeReady(ctx context.Context, k *kubeboot.API) (bool, string) {
	var nodes struct {
		Items []struct {
			Status struct {
				Conditions []struct{ Type, Status, Message string } `json:"conditions"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := k.Do(ctx, http.MethodGet, "/api/v1/nodes", "", nil, &nodes); err != nil {
		return false, err.Error()
	}
	for _, n := range nodes.Items {
		for _, c := range n.Status.Conditions {
			if c.Type == "Ready" {
				return c.Status == "True", c.Message
			}
		}
	}
	return false, fmt.Sprintf("%d nodes", len(nodes.Items))
}

// logEvents logs the cluster's events, to tell why a test waited in vain.
func logEvents(t *testing.T, k *kubeboot.API) {
	var events struct {
		Items []struct {
			InvolvedObject  struct{ Kind, Namespace, Name string } `json:"involvedObject"`
			Reason, Message string
			Count           int
		} `json:"items"`
	}
	if err := k.Do(context.Background(), http.MethodGet, "/api/v1/events", "", nil, &events); err != nil {
		t.Logf("events: %v", err)
		return
	}
	for _, e := range events.Items {
		t.Logf("event: %s %s/%s: %s: %s (x%d)", e.InvolvedObject.Kind, e.InvolvedObject.Namespace, e.InvolvedObject.Name, e.Reason, e.Message, e.Count)
		if e.InvolvedObject.Kind == "Pod" && e.Reason == "BackOff" {
			path := fmt.Sprintf("/api/v1/namespaces/%s/pods/%s/log?previous=true&tailLines=5", e.InvolvedObject.Namespace, e.InvolvedObject.Name)
			logs, err := kubeGetText(context.Background(), k, path)
			t.Logf("last words of %s/%s (%v):\n%s", e.InvolvedObject.Namespace, e.InvolvedObject.Name, err, logs)
		}
	}
}
