package kubenative

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"
)

// bin is the amd64 cairn-kube to run (make kube builds it to
// out/bin/linux-amd64/cairn-kube).
func bin(tb testing.TB) string {
	b := os.Getenv("CAIRN_TEST_KUBE_BIN")
	if b == "" {
		tb.Skip("CAIRN_TEST_KUBE_BIN is not set (point it at out/bin/linux-amd64/cairn-kube)")
	}
	return b
}

func start(t testing.TB, n *Node) time.Duration {
	t.Helper()
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	took, err := n.WaitReady(3 * time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return took
}

func request(t *testing.T, n *Node, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, n.URL+path, rd)
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var obj map[string]any
	json.NewDecoder(resp.Body).Decode(&obj)
	return resp.StatusCode, obj
}

// TestServerPersists starts a control-plane-only server, writes a ConfigMap,
// kills the process, starts it again on the same data directory and reads
// the ConfigMap back from SQLite.
func TestServerPersists(t *testing.T) {
	n, err := New(bin(t), t.TempDir(), Tuning{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Kill)

	took := start(t, n)
	t.Logf("ready after %s", took)
	cm := map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "cairn-persist"},
		"data":     map[string]string{"answer": "42"},
	}
	if code, obj := request(t, n, http.MethodPost, "/api/v1/namespaces/default/configmaps", cm); code != http.StatusCreated {
		t.Fatalf("creating the ConfigMap: %d %v", code, obj)
	}
	if code, _ := request(t, n, http.MethodGet, "/api/v1/namespaces/default/configmaps/cairn-persist", nil); code != http.StatusOK {
		t.Fatalf("reading the ConfigMap: %d", code)
	}

	n.Kill()
	start(t, n)
	code, obj := request(t, n, http.MethodGet, "/api/v1/namespaces/default/configmaps/cairn-persist", nil)
	if code != http.StatusOK {
		t.Fatalf("after a restart the ConfigMap is gone: %d %v", code, obj)
	}
	if got, _ := obj["data"].(map[string]any)["answer"].(string); got != "42" {
		t.Errorf("after a restart data.answer = %q, want 42", got)
	}
	// The controllers run: the root CA publisher fills every namespace.
	deadline := time.Now().Add(time.Minute)
	for {
		code, _ := request(t, n, http.MethodGet, "/api/v1/namespaces/default/configmaps/kube-root-ca.crt", nil)
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kube-root-ca.crt not published after a minute (controller manager not running?): %d; see %s", code, n.Log())
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err := n.Stop(30 * time.Second); err != nil {
		t.Error(err)
	}
}

// idle is how long a server idles before its memory is measured.
const idle = 60 * time.Second

// recommended is the memory tuning agent/kube/README.md recommends.
var recommended = Tuning{GCPercent: 25, MemoryLimitMiB: 250}

// BenchmarkCairnKube measures the binary and a control-plane-only server:
//
//	CAIRN_TEST_KUBE_BIN=$PWD/out/bin/linux-amd64/cairn-kube go test -run '^$' -bench . -benchtime 1x ./agent/kubenative
//
// size and gzip size, start → /readyz (median of 3, cold data directory
// first), RSS and PSS after 60 s idle with Go's defaults and with the
// recommended tuning. It takes about three minutes.
func BenchmarkCairnKube(b *testing.B) {
	path := bin(b)
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	var gz bytes.Buffer
	w, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	w.Write(data)
	w.Close()
	mib := func(n int64) float64 { return float64(n) / (1 << 20) }
	b.ReportMetric(mib(int64(len(data))), "size-MiB")
	b.ReportMetric(mib(int64(gz.Len())), "gzip-MiB")

	for i := 0; i < b.N; i++ {
		// Start → ready, three times on one data directory.
		n, err := New(path, b.TempDir(), Tuning{})
		if err != nil {
			b.Fatal(err)
		}
		var times []time.Duration
		for range 3 {
			times = append(times, start(b, n))
			n.Kill()
		}
		b.Logf("start → /readyz: %v (the first on an empty datastore)", times)
		slices.Sort(times)
		b.ReportMetric(float64(times[1].Milliseconds()), "readyz-ms")

		for _, run := range []struct {
			name string
			tune Tuning
		}{{"default", Tuning{}}, {"tuned", recommended}} {
			n, err := New(path, b.TempDir(), run.tune)
			if err != nil {
				b.Fatal(err)
			}
			start(b, n)
			time.Sleep(idle)
			m, err := MemoryOf(n.Pid())
			n.Kill()
			if err != nil {
				b.Fatal(err)
			}
			b.Logf("%s (%+v): RSS %.0f MiB, PSS %.0f MiB after %s idle", run.name, run.tune, mib(m.RSS), mib(m.PSS), idle)
			b.ReportMetric(mib(m.RSS), "rss-"+run.name+"-MiB")
			b.ReportMetric(mib(m.PSS), "pss-"+run.name+"-MiB")
		}
	}
}
