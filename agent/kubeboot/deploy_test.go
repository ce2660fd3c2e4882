package kubeboot

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cairn-edge/cairn/agent/config"
)

// fakeAPI answers discovery for the kinds the tests apply and records
// every server-side apply; names in refuse get a 422.
type fakeAPI struct {
	mu      sync.Mutex
	applied []string // "configmaps/NAME", …
	refuse  map[string]bool
}

var fakeResources = map[string]string{
	"/api/v1": `{"resources": [{"name": "configmaps", "kind": "ConfigMap", "namespaced": true},
		{"name": "services", "kind": "Service", "namespaced": true},
		{"name": "serviceaccounts", "kind": "ServiceAccount", "namespaced": true}]}`,
	"/apis/apps/v1": `{"resources": [{"name": "deployments", "kind": "Deployment", "namespaced": true}]}`,
	"/apis/rbac.authorization.k8s.io/v1": `{"resources": [{"name": "clusterroles", "kind": "ClusterRole"},
		{"name": "clusterrolebindings", "kind": "ClusterRoleBinding"}]}`,
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		if body, ok := fakeResources[r.URL.Path]; ok {
			io.WriteString(w, body)
			return
		}
		http.NotFound(w, r)
		return
	}
	parts := strings.Split(r.URL.Path, "/")
	obj := strings.Join(parts[len(parts)-2:], "/")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refuse[parts[len(parts)-1]] {
		w.WriteHeader(http.StatusUnprocessableEntity)
		json.NewEncoder(w).Encode(map[string]string{"message": "refused by the test"})
		return
	}
	f.applied = append(f.applied, obj)
	io.WriteString(w, "{}")
}

// take returns what was applied since the last call.
func (f *fakeAPI) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.applied
	f.applied = nil
	return out
}

func configMap(name string) string {
	return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name + ", namespace: default}\ndata: {a: b}\n"
}

// testNode is a server node talking to api, its console in con.
func testNode(t *testing.T, api http.Handler) (*Node, *console) {
	t.Helper()
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	con := &console{}
	n := &Node{phase: "ready", kube: &API{URL: srv.URL, Client: srv.Client()}, opts: Options{
		Config: config.Kubernetes{}.WithDefaults(), NodeName: "edge-1",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Say: con.say, Output: io.Discard,
	}}
	return n, con
}

func TestDeploy(t *testing.T) {
	baked, user := t.TempDir(), t.TempDir()
	defer func(d []string) { manifestDirs = d }(manifestDirs)
	manifestDirs = []string{baked, user}
	write := func(dir, name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(baked, "00-app.yaml", configMap("app"))
	write(user, "good.yaml", configMap("good"))
	write(user, "bad.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [\n")
	write(user, "notes.txt", "not a manifest")

	api := &fakeAPI{refuse: map[string]bool{}}
	n, con := testNode(t, api)
	d := &deployer{n: n}
	ctx := context.Background()
	bad := filepath.Join(user, "bad.yaml")

	// First ready: everything, the malformed file reported by name.
	d.deploy(ctx, true)
	got := api.take()
	for _, want := range []string{"deployments/coredns", "clusterrolebindings/cairn:node-proxier", "configmaps/app", "configmaps/good"} {
		if !slices.Contains(got, want) {
			t.Errorf("first deploy applied %v, want %s among them", got, want)
		}
	}
	if st := n.Status(ctx); len(st.Problems) != 1 || !strings.Contains(st.Problems[0], bad) {
		t.Fatalf("problems %q, want one naming %s", st.Problems, bad)
	}
	if con.count(bad) != 1 {
		t.Errorf("console said %d times that %s is malformed, want once: %q", con.count(bad), bad, con.lines)
	}

	// A poll with nothing new sends nothing and says nothing more.
	d.deploy(ctx, false)
	if got := api.take(); len(got) != 0 {
		t.Errorf("a poll with nothing new applied %v", got)
	}
	if con.count(bad) != 1 {
		t.Errorf("a poll repeated the malformed file on the console")
	}

	// A file dropped in later is applied on the next poll, alone.
	write(user, "later.yaml", configMap("later"))
	d.deploy(ctx, false)
	if got := api.take(); !slices.Equal(got, []string{"configmaps/later"}) {
		t.Errorf("after a drop-in: applied %v, want only configmaps/later", got)
	}

	// The malformed file fixed: applied, the problem gone, and said so.
	write(user, "bad.yaml", configMap("fixed"))
	d.deploy(ctx, false)
	if got := api.take(); !slices.Equal(got, []string{"configmaps/fixed"}) {
		t.Errorf("after the fix: applied %v, want configmaps/fixed", got)
	}
	if st := n.Status(ctx); len(st.Problems) != 0 {
		t.Errorf("problems %q after the fix, want none", st.Problems)
	}
	if con.count("resolved: manifest "+bad) != 1 {
		t.Errorf("console: %q, want the fix said", con.lines)
	}

	// One the API refuses is a problem, tried again on every poll.
	write(user, "refused.yaml", configMap("nope"))
	api.refuse["nope"] = true
	d.deploy(ctx, false)
	d.deploy(ctx, false)
	if st := n.Status(ctx); len(st.Problems) != 1 || !strings.Contains(st.Problems[0], "refused by the test") {
		t.Errorf("problems %q, want the refusal", st.Problems)
	}
	api.refuse["nope"] = false
	d.deploy(ctx, false)
	if got := api.take(); !slices.Equal(got, []string{"configmaps/nope"}) {
		t.Errorf("after the API accepts it: applied %v, want configmaps/nope", got)
	}

	// The cluster came back (a new, empty datastore): all again.
	d.deploy(ctx, true)
	if got := api.take(); !slices.Contains(got, "deployments/coredns") || !slices.Contains(got, "configmaps/good") || !slices.Contains(got, "configmaps/later") {
		t.Errorf("deploy(all) applied %v, want coredns and every file", got)
	}

	// A malformed file removed: its problem goes with it.
	write(user, "worse.yaml", "kind: ConfigMap\n")
	d.deploy(ctx, false)
	if st := n.Status(ctx); len(st.Problems) != 1 {
		t.Fatalf("problems %q, want worse.yaml's", st.Problems)
	}
	os.Remove(filepath.Join(user, "worse.yaml"))
	d.deploy(ctx, false)
	if st := n.Status(ctx); len(st.Problems) != 0 {
		t.Errorf("problems %q after the file was removed, want none", st.Problems)
	}
}
