package kubeboot

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/agent/kubenative"
)

// realControlPlane starts a cairn-kube control plane on this host
// (CAIRN_TEST_KUBE_BIN) for the test's duration and returns it with an
// administrator's client; it skips the test without the binary.
func realControlPlane(t *testing.T) (*kubenative.Node, *API) {
	t.Helper()
	bin := os.Getenv("CAIRN_TEST_KUBE_BIN")
	if bin == "" {
		t.Skip("set CAIRN_TEST_KUBE_BIN to a linux-amd64 cairn-kube (make kube)")
	}
	cp, err := kubenative.New(bin, t.TempDir(), kubenative.Tuning{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cp.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cp.Kill)
	if _, err := cp.WaitReady(3 * time.Minute); err != nil {
		t.Fatal(err)
	}
	return cp, &API{URL: cp.URL, Client: cp.Client}
}

// TestApplyRealAPIServer applies manifests to a real cairn-kube control
// plane started on this host (CAIRN_TEST_KUBE_BIN).
func TestApplyRealAPIServer(t *testing.T) {
	_, api := realControlPlane(t)
	ctx := context.Background()

	// The ConfigMap comes before its namespace: the second pass applies it.
	objs, err := ParseManifest([]byte(`apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: edge}
data: {mode: "1"}
---
apiVersion: v1
kind: Namespace
metadata: {name: edge}
---
apiVersion: example.com/v1
kind: Gadget
metadata: {name: nope}
`))
	if err != nil {
		t.Fatal(err)
	}
	errs := api.ApplyAll(ctx, objs)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "Gadget nope") || !strings.Contains(errs[0].Error(), "example.com/v1") {
		t.Fatalf("errors = %v, want one about Gadget nope", errs)
	}
	// Applying again changes the data in place.
	objs[0].Doc["data"] = map[string]any{"mode": "2"}
	if err := api.Apply(ctx, objs[0]); err != nil {
		t.Fatal(err)
	}
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := api.Do(ctx, http.MethodGet, "/api/v1/namespaces/edge/configmaps/settings", "", nil, &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Data["mode"] != "2" {
		t.Errorf("configmap data = %v, want mode 2", cm.Data)
	}
}
