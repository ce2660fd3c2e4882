package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	ggcr "github.com/google/go-containerregistry/pkg/registry"

	"github.com/cairn-edge/cairn/agent/update/artifact"
)

// testRegistry is go-containerregistry's in-memory registry in httptest,
// behind an optional handler that misbehaves on purpose.
type testRegistry struct {
	srv  *httptest.Server
	host string
}

func newTestRegistry(t *testing.T, wrap func(http.Handler) http.Handler) *testRegistry {
	t.Helper()
	var h http.Handler = ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &testRegistry{srv: srv, host: strings.TrimPrefix(srv.URL, "http://")}
}

// push uploads a blob (monolithic POST, bypassing any wrapper's faults on
// GET) and returns its descriptor.
func (tr *testRegistry) push(t *testing.T, repo, mediaType string, data []byte) artifact.Descriptor {
	t.Helper()
	d := artifact.Descriptor{MediaType: mediaType, Digest: Digest(data), Size: int64(len(data))}
	resp, err := http.Post(tr.srv.URL+"/v2/"+repo+"/blobs/uploads/?digest="+d.Digest, "application/octet-stream", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("pushing blob: %s", resp.Status)
	}
	return d
}

func (tr *testRegistry) putManifest(t *testing.T, repo, ref, mediaType string, body []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, tr.srv.URL+"/v2/"+repo+"/manifests/"+ref, bytes.NewReader(body))
	req.Header.Set("Content-Type", mediaType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("pushing manifest %s: %s", ref, resp.Status)
	}
}

// pushArtifact pushes a Cairn update artifact for board with a random slot
// of slotSize bytes and returns the manifest's bytes and the slot.
func (tr *testRegistry) pushArtifact(t *testing.T, repo, tag, board string, slot []byte) ([]byte, artifact.Descriptor) {
	t.Helper()
	cfg, _ := json.Marshal(artifact.Config{Name: "edge", Version: "1.2.0", Board: board, Arch: "amd64", Cmdline: []string{"console=ttyS0"}})
	m := artifact.Manifest{
		SchemaVersion: 2, MediaType: artifact.ManifestMediaType, ArtifactType: artifact.ArtifactType,
		Config: tr.push(t, repo, artifact.ConfigMediaType, cfg),
		Layers: []artifact.Descriptor{
			tr.push(t, repo, artifact.SlotMediaType, slot),
			tr.push(t, repo, artifact.KernelMediaType, []byte("kernel "+board)),
			tr.push(t, repo, artifact.InitrdMediaType, []byte("initrd "+board)),
		},
		Annotations: map[string]string{artifact.AnnotationBoard: board, artifact.AnnotationArch: "amd64"},
	}
	body, _ := json.Marshal(m)
	if tag != "" {
		tr.putManifest(t, repo, tag, artifact.ManifestMediaType, body)
	} else {
		tr.putManifest(t, repo, Digest(body), artifact.ManifestMediaType, body)
	}
	return body, m.Layers[0]
}

func random(seed uint64, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed)}).Read(b)
	return b
}

// testLogger sends Warn and above to the test's log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tlog struct{ t *testing.T }

func (l tlog) Write(p []byte) (int, error) { l.t.Log(strings.TrimSpace(string(p))); return len(p), nil }

// newClient returns a client tuned for tests: quick backoff and stall
// detection, 1 MiB ranges.
func newClient(t *testing.T, host string, change ...func(*Options)) *Client {
	t.Helper()
	o := Options{Host: host, PlainHTTP: true, Logger: testLogger(t), RangeSize: 1 << 20,
		StallTimeout: 300 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond, MaxAttempts: 4}
	for _, f := range change {
		f(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// onBlobGET wraps a registry so that f handles blob GETs.
func onBlobGET(f func(w http.ResponseWriter, r *http.Request, next http.Handler)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") {
				f(w, r, next)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// respWriter lets a test change a response's header and body.
type respWriter struct {
	http.ResponseWriter
	header func(code int, h http.Header) int
	body   func(p []byte, written int) []byte // returns what to write
	n      int
}

func (w *respWriter) WriteHeader(code int) {
	if w.header != nil {
		code = w.header(code, w.ResponseWriter.Header())
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *respWriter) Write(p []byte) (int, error) {
	q := p
	if w.body != nil {
		q = w.body(bytes.Clone(p), w.n)
	}
	w.n += len(p)
	if _, err := w.ResponseWriter.Write(q); err != nil {
		return 0, err
	}
	return len(p), nil
}

// counter counts calls safely.
type counter struct {
	mu sync.Mutex
	n  int
}

func (c *counter) inc() int { c.mu.Lock(); defer c.mu.Unlock(); c.n++; return c.n }
func (c *counter) get() int { c.mu.Lock(); defer c.mu.Unlock(); return c.n }

var bg = context.Background()
