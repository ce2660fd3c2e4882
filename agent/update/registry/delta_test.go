package registry

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/agent/update/artifact"
	"github.com/cairn-edge/cairn/agent/update/chunk"
	"github.com/cairn-edge/cairn/agent/update/registry/faultproxy"
)

// TestDeltaFromRegistry assembles a new slot from an old one plus ranges
// of the new slot blob fetched with FetchRange, through a link that cuts
// once in the middle of a range.
func TestDeltaFromRegistry(t *testing.T) {
	old := random(20, 16<<20)
	mid := len(old) / 2
	new := append(append(bytes.Clone(old[:mid]), random(21, 1<<10)...), old[mid:]...)
	copy(new[3<<20:], random(22, 100)) // and a small patch elsewhere
	tr := newTestRegistry(t, nil)
	_, slot := tr.pushArtifact(t, "cairn/edge", "2", "pc", new)

	want, err := chunk.Build(bytes.NewReader(new))
	if err != nil {
		t.Fatal(err)
	}
	d, err := chunk.Plan(want, bytes.NewReader(old), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Ranges) < 2 {
		t.Fatalf("plan has %d ranges, want one per change", len(d.Ranges))
	}
	// Cut the link in the middle of the second range's body.
	p, err := faultproxy.Start(faultproxy.Options{Upstream: tr.host, PerConn: [][]faultproxy.Fault{{}, {{After: 1000 + d.Ranges[1].Length/2, Cut: true}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := newClient(t, p.Addr(), func(o *Options) { o.Transport = &http.Transport{DisableKeepAlives: true} })
	fetch := func(ctx context.Context, r chunk.Range, w io.Writer) error {
		return c.FetchRange(ctx, "cairn/edge", slot, r.Offset, r.Length, w)
	}
	var out bytes.Buffer
	st, err := d.Apply(bg, &out, fetch, chunk.ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), new) {
		t.Fatal("assembled slot differs")
	}
	t.Logf("16 MiB slot, 1 KiB inserted + 100 bytes patched: %d ranges, fetched %d bytes (%.2f %% of the slot), received %d; %d cut(s)",
		len(d.Ranges), st.Fetched, 100*float64(st.Fetched)/float64(len(new)), c.Received(), p.Stats().Cuts)
	if c.Received() != st.Fetched || st.Fetched != d.FetchBytes || p.Stats().Cuts != 1 {
		t.Errorf("received %d, fetched %d, planned %d, %d cuts", c.Received(), st.Fetched, d.FetchBytes, p.Stats().Cuts)
	}
	if st.Fetched > int64(len(new))/10 {
		t.Errorf("the delta fetched %d bytes of %d, want ≤ 10 %%", st.Fetched, len(new))
	}
}

func TestFetchRangeIgnored(t *testing.T) {
	tr := newTestRegistry(t, onBlobGET(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		r.Header.Del("Range")
		next.ServeHTTP(w, r)
	}))
	data := random(23, 1<<20)
	_, slot := tr.pushArtifact(t, "cairn/edge", "1", "pc", data)
	c := newClient(t, tr.host)
	if err := c.FetchRange(bg, "cairn/edge", slot, 100, 100, io.Discard); !errors.Is(err, ErrRangeUnsupported) || !strings.Contains(err.Error(), "from byte 0") {
		t.Fatalf("FetchRange from a registry without Range = %v, want ErrRangeUnsupported", err)
	}
	var out bytes.Buffer
	if err := c.FetchRange(bg, "cairn/edge", slot, 0, 100, &out); err != nil || !bytes.Equal(out.Bytes(), data[:100]) {
		t.Fatalf("FetchRange from 0 = %v", err)
	}
}

// TestFetchStreams checks that a download allocates a small, fixed amount
// whatever the blob's size: the agent's memory during an upgrade stays
// flat.
func TestFetchStreams(t *testing.T) {
	data := random(24, 32<<20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "blob", time.Time{}, bytes.NewReader(data))
	}))
	defer srv.Close()
	c := newClient(t, strings.TrimPrefix(srv.URL, "http://"), func(o *Options) { o.RangeSize = DefaultRangeSize })
	desc := artifact.Descriptor{Digest: Digest(data), Size: int64(len(data))}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if err := c.Fetch(bg, "cairn/edge", desc, io.Discard, FetchOptions{}); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc // client and test server together
	t.Logf("fetching 32 MiB allocated %d KiB in all (client and test server)", alloc>>10)
	if alloc > 4<<20 {
		t.Errorf("fetching 32 MiB allocated %d bytes; a download must stream", alloc)
	}
}
