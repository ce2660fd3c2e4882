package qemutests

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/agent/api/role"
	"github.com/cairn-edge/cairn/agent/kubeboot"
	"github.com/cairn-edge/cairn/builder/pki"
	"github.com/cairn-edge/cairn/qemu-tests/qemu"
)

// clockJump is how far ahead the node's clock is on its second boot: past
// the end of the cluster's leaf certificates (1 year), within its CA's
// (10 years).
const clockJump = 2 * 365 * 24 * time.Hour

// kubeBadInput feeds the Kubernetes node on vm (TestKubernetes's, started
// with opts) what goes wrong on a box nobody watches, from privileged pods
// with a hostPath, and sees it keep running and say so in `cairn node
// status`:
//
//   - a malformed and a good manifest dropped into /var/lib/cairn/kube/manifests
//     while it runs: the bad one named in status, the good one applied;
//   - CAIRN-DATA filled to the last block: a problem in status while the API
//     still answers, gone once the space is back;
//   - the datastore overwritten and cairn-kube killed: the database moved
//     aside, reported, the node Ready again with CoreDNS and the drop-in
//     applied again to the empty cluster;
//   - in make test-full, powered off and on with the clock two years
//     ahead: the expired certificates renewed, the node Ready.
//
// It returns the guest of that last boot.
func kubeBadInput(t *testing.T, vm *qemu.VM, opts []qemu.Option) *qemu.VM {
	client := longClient(t) // still valid when the node's clock is two years ahead
	k := badInputClient(t, vm, client, 0)
	ctx := context.Background()
	t.Cleanup(func() {
		if t.Failed() {
			logEvents(t, k)
			for _, pod := range []string{"default/dropper", "kube-system/filler", "kube-system/breaker"} {
				ns, name, _ := strings.Cut(pod, "/")
				logs, err := kubeGetText(ctx, k, "/api/v1/namespaces/"+ns+"/pods/"+name+"/log")
				t.Logf("log of %s (%v):\n%s", pod, err, logs)
			}
		}
	})
	waitFor(t, "node Ready", kubeTimeout, func() (bool, string) { return nodeReady(ctx, k) })

	// Drop-in manifests while the node runs: the malformed one is named,
	// the good one applied all the same.
	bad := kubeboot.UserManifestsDir + "/50-bad.yaml"
	apply(t, k, hostPod("default", "dropper", "/var/lib/cairn", false,
		"write", "/host/kube/manifests/50-bad.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [oops\n", "then",
		"write", "/host/kube/manifests/60-good.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dropped-in, namespace: default}\ndata: {from: drop-in}\n"))
	if _, err := vm.Expect(kubeTimeout, `cairn: warning: kubernetes: manifest `+bad+`: `); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the good drop-in applied", time.Minute, func() (bool, string) { return exists(ctx, k, "/api/v1/namespaces/default/configmaps/dropped-in") })
	waitForProblem(t, vm, client, "the malformed drop-in in status", bad, true)

	// CAIRN-DATA full: reported while the API still answers reads, and
	// no longer once the filler lets go.
	apply(t, k, hostPod("kube-system", "filler", "/var/lib/cairn", false, "fill", "/host/fill", "45s"))
	if _, err := vm.Expect(2*time.Minute, `cairn: warning: kubernetes: CAIRN-DATA is nearly full`); err != nil {
		t.Fatal(err)
	}
	waitForProblem(t, vm, client, "the full disk in status", "is nearly full", true)
	if ok, msg := nodeReady(ctx, k); !ok {
		t.Errorf("with the disk full: node not Ready or the API not answering: %s", msg)
	}
	if _, err := vm.Expect(2*time.Minute, `cairn: kubernetes: resolved: disk space`); err != nil {
		t.Fatal(err)
	}
	waitForProblem(t, vm, client, "the full disk gone from status", "is nearly full", false)

	// The datastore overwritten under a killed cairn-kube: moved aside,
	// reported, and the empty cluster given its manifests again.
	// In kube-system, so the kubelet admits it (as a node-critical pod)
	// while it still reports DiskPressure: the condition outlasts the full
	// disk by the eviction transition period (5 min).
	apply(t, k, hostPod("kube-system", "breaker", "/var/lib/cairn/kube/db", true,
		"kill", "cairn-kube", "then", "corrupt", "/host/state.db", "/host/state.db-wal"))
	if _, err := vm.Expect(kubeTimeout, `cairn-kube exited \(signal: killed\)`); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.Expect(kubeTimeout, `cairn: warning: kubernetes: datastore: .*state\.db was corrupt \(file is not a database\)`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "node Ready on the new datastore", kubeTimeout, func() (bool, string) { return nodeReady(ctx, k) })
	waitFor(t, "CoreDNS and the drop-in applied again", time.Minute, func() (bool, string) {
		ok, msg := exists(ctx, k, "/apis/apps/v1/namespaces/kube-system/deployments/coredns")
		if ok {
			ok, msg = exists(ctx, k, "/api/v1/namespaces/default/configmaps/dropped-in")
		}
		return ok, msg
	})
	if ok, _ := exists(ctx, k, "/api/v1/namespaces/default/pods/dropper"); ok {
		t.Error("the dropper pod is still there: the datastore was not replaced")
	}
	waitForProblem(t, vm, client, "the moved-aside datastore in status", "state.db was corrupt", true)

	if os.Getenv("CAIRN_TEST_FULL") == "" {
		return vm
	}
	// make test-full: two years later. Every leaf certificate expired
	// while the node was off; it renews them and comes back.
	if err := vm.PowerDown(2 * time.Minute); err != nil {
		t.Fatal(err)
	}
	later := time.Now().UTC().Add(clockJump)
	vm = qemu.StartT(t, append(opts, qemu.WithExtraArgs("-rtc", "base="+later.Format("2006-01-02T15:04:05")))...)
	if _, err := vm.Expect(kubeTimeout, `cairn: kubernetes certificates renewed: .*apiserver`); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.Expect(kubeTimeout, `cairn: kubernetes ready`); err != nil {
		t.Fatal(err)
	}
	k = badInputClient(t, vm, client, clockJump)
	waitFor(t, "node Ready two years later", kubeTimeout, func() (bool, string) { return nodeReady(ctx, k) })
	resp, err := k.Client.Get(k.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if nb := resp.TLS.PeerCertificates[0].NotBefore; nb.Before(time.Now().Add(clockJump / 2)) {
		t.Errorf("the API server's certificate dates from %s: not renewed", nb)
	}
	var st api.Status
	nodeJSON(t, vm, client, &st, "status")
	if k := st.Kubernetes; k == nil || !k.NodeReady || k.Phase != "ready" {
		t.Fatalf("status.kubernetes = %+v, want a ready node", st.Kubernetes)
	}
	t.Logf("problems two years later: %q", st.Kubernetes.Problems)
	if !strings.Contains(strings.Join(st.Kubernetes.Problems, "\n"), "state.db was corrupt") {
		t.Errorf("the moved-aside datastore is no longer reported (it stays until its files are removed)")
	}
	return vm
}

// badInputClient is a cluster administrator's client from `cairn node
// kubeconfig`, for a node whose clock is ahead by skew (its certificates
// start then).
func badInputClient(t *testing.T, vm *qemu.VM, client string, skew time.Duration) *kubeboot.API {
	t.Helper()
	kc, err := node(t, vm, client, "kubeconfig", "--kube-server", fmt.Sprintf("https://127.0.0.1:%d", vm.HostPort(kubeAPIPort)))
	if err != nil {
		t.Fatalf("cairn node kubeconfig: %v\n%s", err, kc)
	}
	k := kubeClient(t, []byte(kc))
	k.Client.Transport.(*http.Transport).TLSClientConfig.Time = func() time.Time { return time.Now().Add(skew) }
	return k
}

// longClient writes a client config whose certificate, issued by the
// image's own CA, lasts three years.
func longClient(t *testing.T) string {
	t.Helper()
	p, err := pki.Ensure(pkiDir, pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := pki.Issue(p.CA, pki.Request{CommonName: "cairn-admin", Usage: pki.ClientAuth, Role: role.Admin, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(3 * 365 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	long := *p
	long.Client = c
	path := filepath.Join(t.TempDir(), "long.yaml")
	if err := pki.WriteClientConfig(path, "https://cairn-node:7443", testNode, &long); err != nil {
		t.Fatal(err)
	}
	return path
}

// hostPod is a pod running the test program with args, the node's
// directory dir mounted at /host; privileged ones share the host's PID
// namespace. In kube-system with the node-critical priority, the kubelet
// never evicts it (a full disk makes it evict pods).
func hostPod(ns, name, dir string, privileged bool, args ...string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = strconv.Quote(a)
	}
	priority := ""
	if ns == "kube-system" { // scheduled and admitted under disk pressure too
		priority = "priorityClassName: system-node-critical\n  tolerations: [{key: node.kubernetes.io/disk-pressure, operator: Exists, effect: NoSchedule}]"
	}
	return fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: %s}
spec:
  restartPolicy: Never
  hostPID: %t
  %s
  containers:
  - name: main
    image: cairn.test/hello:1
    imagePullPolicy: Never
    args: [%s]
    securityContext: {privileged: %t}
    volumeMounts: [{name: host, mountPath: /host}]
  volumes: [{name: host, hostPath: {path: %s, type: Directory}}]
`, name, ns, privileged, priority, strings.Join(quoted, ", "), privileged, dir)
}

// exists reports whether the API object at path exists.
func exists(ctx context.Context, k *kubeboot.API, path string) (bool, string) {
	err := k.Do(ctx, http.MethodGet, path, "", nil, nil)
	return err == nil, fmt.Sprint(err)
}

// waitForProblem waits until `cairn node status` lists (or, with want
// false, no longer lists) a Kubernetes problem containing substr.
func waitForProblem(t *testing.T, vm *qemu.VM, client, what, substr string, want bool) {
	t.Helper()
	waitFor(t, what, 2*time.Minute, func() (bool, string) {
		var st api.Status
		out, err := node(t, vm, client, "status", "--json")
		if err != nil {
			return false, err.Error()
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil || st.Kubernetes == nil {
			return false, fmt.Sprintf("%v: %s", err, out)
		}
		problems := strings.Join(st.Kubernetes.Problems, "\n")
		return strings.Contains(problems, substr) == want, problems
	})
}
