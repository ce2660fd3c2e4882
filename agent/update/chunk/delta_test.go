package chunk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// blobFetch serves ranges of blob and records them.
type blobFetch struct {
	blob   []byte
	ranges []Range
	bytes  int64
	// tamper, if set, changes the bytes served.
	tamper func(r Range, b []byte) []byte
}

func (f *blobFetch) fetch(ctx context.Context, r Range, w io.Writer) error {
	f.ranges = append(f.ranges, r)
	if r.Offset < 0 || r.Last() >= int64(len(f.blob)) {
		return fmt.Errorf("range %s outside the blob", r)
	}
	b := bytes.Clone(f.blob[r.Offset : r.Last()+1])
	if f.tamper != nil {
		b = f.tamper(r, b)
	}
	f.bytes += int64(len(b))
	// Deliver in odd pieces, as a network would.
	for len(b) > 0 {
		n := min(len(b), 10007)
		if _, err := w.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// smallChange returns a 30 MB random blob and a copy with 1 KiB inserted
// in the middle.
func smallChange() (old, new []byte) {
	old = random(10, 30<<20)
	mid := len(old) / 2
	new = append(append(bytes.Clone(old[:mid]), random(11, 1<<10)...), old[mid:]...)
	return old, new
}

func assemble(t testing.TB, old, new []byte, haveIndex *Index) (*Delta, Stats, *blobFetch) {
	t.Helper()
	want, err := Build(bytes.NewReader(new))
	if err != nil {
		t.Fatal(err)
	}
	d, err := Plan(want, bytes.NewReader(old), haveIndex)
	if err != nil {
		t.Fatal(err)
	}
	f := &blobFetch{blob: new}
	var out bytes.Buffer
	st, err := d.Apply(context.Background(), &out, f.fetch, ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), new) {
		t.Fatal("assembled slot differs from the new blob")
	}
	return d, st, f
}

func TestDeltaSmallChange(t *testing.T) {
	old, new := smallChange()
	d, st, f := assemble(t, old, new, nil)
	t.Logf("30 MB blob, 1 KiB inserted in the middle: fetched %d bytes (%.3f %%) in %d range(s), %d bytes local",
		f.bytes, 100*float64(f.bytes)/float64(len(new)), len(f.ranges), st.Local)
	if !d.Rechunked {
		t.Error("Plan without a have index did not chunk the local source")
	}
	if st.Fetched != d.FetchBytes || st.Local != d.LocalBytes || st.Fetched+st.Local != int64(len(new)) || f.bytes != st.Fetched {
		t.Errorf("stats %+v, plan fetch %d local %d, served %d", st, d.FetchBytes, d.LocalBytes, f.bytes)
	}
	if f.bytes > 4*DefaultMaxSize {
		t.Errorf("fetched %d bytes for a 1 KiB change, want at most a few chunks", f.bytes)
	}
	if len(f.ranges) != 1 {
		t.Errorf("%d ranges for one change, want 1: %v", len(f.ranges), f.ranges)
	}
}

func TestDeltaWithHaveIndex(t *testing.T) {
	old, new := smallChange()
	haveIndex, _ := Build(bytes.NewReader(old))
	d, _, f := assemble(t, old, new, haveIndex)
	if d.Rechunked {
		t.Error("Plan re-chunked although it had an index of the local source")
	}
	if f.bytes > 4*DefaultMaxSize {
		t.Errorf("fetched %d bytes", f.bytes)
	}
	// An index cut with other sizes cannot be compared: Plan re-chunks.
	other, _ := BuildWith(bytes.NewReader(old), Params{MinSize: 4 << 10, AvgSize: 16 << 10, MaxSize: 64 << 10})
	want, _ := Build(bytes.NewReader(new))
	if d, _ := Plan(want, bytes.NewReader(old), other); !d.Rechunked {
		t.Error("Plan used an index cut with other sizes")
	}
}

func TestDeltaNothingLocal(t *testing.T) {
	new := random(12, 20<<20)
	d, st, f := assemble(t, random(13, 1<<20), new, nil)
	if st.Local != 0 || d.LocalBytes != 0 {
		t.Errorf("local %d bytes from unrelated data", st.Local)
	}
	for _, r := range f.ranges {
		if r.Length > DefaultMaxRange {
			t.Errorf("range %s longer than %d", r, DefaultMaxRange)
		}
	}
	if n := len(f.ranges); n < 3 || n > 4 {
		t.Errorf("%d ranges for 20 MiB in ranges of 8 MiB: %v", n, f.ranges)
	}
	// No local source at all (the first install, or a lost slot).
	want, _ := Build(bytes.NewReader(new))
	d, _ = Plan(want, nil, nil)
	var out bytes.Buffer
	if _, err := d.Apply(context.Background(), &out, (&blobFetch{blob: new}).fetch, ApplyOptions{}); err != nil || !bytes.Equal(out.Bytes(), new) {
		t.Fatalf("Apply without a local source: %v", err)
	}
}

func TestCoalesce(t *testing.T) {
	// Ten 1000-byte chunks; L = local, F = fetched.
	ix := &Index{Chunker: Chunker, Size: 10000, MinSize: 1000, AvgSize: 1024, MaxSize: 4096}
	for i := range 10 {
		ix.Chunks = append(ix.Chunks, Chunk{Offset: int64(i) * 1000, Length: 1000})
	}
	for _, tc := range []struct {
		layout string
		opt    PlanOptions
		want   string
	}{
		{"LLLLLLLLLL", PlanOptions{}, ""},
		{"FFFFFFFFFF", PlanOptions{}, "0-9999"},
		{"FLFLLLFFLF", PlanOptions{MaxGap: 1000}, "0-2999 6000-9999"},
		{"FLFLLLFFLF", PlanOptions{MaxGap: -1}, "0-999 2000-2999 6000-7999 9000-9999"},
		{"FLFLLLFFLF", PlanOptions{MaxGap: 3000}, "0-9999"},
		{"FFFFFFFFFF", PlanOptions{MaxRange: 3000}, "0-2999 3000-5999 6000-8999 9000-9999"},
	} {
		t.Run(tc.layout, func(t *testing.T) {
			d := &Delta{Want: ix, Local: make([]int64, 10)}
			for i, c := range tc.layout {
				if c == 'F' {
					d.Local[i] = -1
				}
			}
			d.coalesce(tc.opt.defaults())
			var got []string
			for _, r := range d.Ranges {
				got = append(got, strings.TrimPrefix(r.String(), "bytes="))
			}
			if g := strings.Join(got, " "); g != tc.want {
				t.Errorf("ranges %q, want %q", g, tc.want)
			}
			if d.FetchBytes+d.LocalBytes != ix.Size {
				t.Errorf("fetch %d + local %d != %d", d.FetchBytes, d.LocalBytes, ix.Size)
			}
		})
	}
}

func TestLocalChunkChanged(t *testing.T) {
	old, new := smallChange()
	haveIndex, _ := Build(bytes.NewReader(old))
	want, _ := Build(bytes.NewReader(new))
	// The active slot changed after it was indexed: its index lies.
	changed := bytes.Clone(old)
	changed[5<<20] ^= 1
	d, _ := Plan(want, bytes.NewReader(changed), haveIndex)
	f := &blobFetch{blob: new}
	var out bytes.Buffer
	st, err := d.Apply(context.Background(), &out, f.fetch, ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), new) {
		t.Fatal("a changed local chunk made it into the slot")
	}
	if st.Refetched != 1 {
		t.Errorf("refetched %d chunks, want 1", st.Refetched)
	}
}

func TestFetchedChunkTampered(t *testing.T) {
	old, new := smallChange()
	want, _ := Build(bytes.NewReader(new))
	d, _ := Plan(want, bytes.NewReader(old), nil)
	f := &blobFetch{blob: new, tamper: func(r Range, b []byte) []byte { b[len(b)/2] ^= 1; return b }}
	_, err := d.Apply(context.Background(), io.Discard, f.fetch, ApplyOptions{})
	if err == nil || !strings.Contains(err.Error(), "the chunk index says") {
		t.Fatalf("Apply with a tampered range = %v, want a hash mismatch", err)
	}
	f.tamper = func(r Range, b []byte) []byte { return b[:len(b)-1] }
	if _, err := d.Apply(context.Background(), io.Discard, f.fetch, ApplyOptions{}); err == nil || !strings.Contains(err.Error(), "less than asked") {
		t.Fatalf("Apply with a short range = %v", err)
	}
	f.tamper = func(r Range, b []byte) []byte { return append(b, 0) }
	if _, err := d.Apply(context.Background(), io.Discard, f.fetch, ApplyOptions{}); !errors.Is(err, errTooMuch) {
		t.Fatalf("Apply with a long range = %v", err)
	}
}

// offsetBuffer is a growable io.WriterAt + io.ReaderAt, a stand-in for a
// partition.
type offsetBuffer struct{ b []byte }

func (o *offsetBuffer) WriteAt(p []byte, off int64) (int, error) {
	if n := int(off) + len(p); n > len(o.b) {
		o.b = append(o.b, make([]byte, n-len(o.b))...)
	}
	return copy(o.b[off:], p), nil
}

func (o *offsetBuffer) ReadAt(p []byte, off int64) (int, error) {
	return bytes.NewReader(o.b).ReadAt(p, off)
}

func TestResume(t *testing.T) {
	old, new := smallChange()
	want, _ := Build(bytes.NewReader(new))
	d, _ := Plan(want, bytes.NewReader(old), nil)
	part := &offsetBuffer{}
	// A power cut after some bytes: the last chunk written is half there.
	cut := want.Chunks[len(want.Chunks)/2].Offset + 100
	stop := errors.New("power cut")
	w := &limitWriter{w: io.NewOffsetWriter(part, 0), n: cut, err: stop}
	if _, err := d.Apply(context.Background(), w, (&blobFetch{blob: new}).fetch, ApplyOptions{}); !errors.Is(err, stop) {
		t.Fatalf("Apply into a cut writer = %v", err)
	}
	from, err := want.VerifyPrefix(part)
	if err != nil {
		t.Fatal(err)
	}
	if from != want.Chunks[len(want.Chunks)/2].Offset {
		t.Fatalf("VerifyPrefix = %d, want %d", from, want.Chunks[len(want.Chunks)/2].Offset)
	}
	if _, err := d.Apply(context.Background(), io.Discard, nil, ApplyOptions{From: from + 1}); err == nil || !strings.Contains(err.Error(), "chunk boundary") {
		t.Fatalf("Apply from inside a chunk = %v", err)
	}
	var local, fetched int64
	st, err := d.Apply(context.Background(), io.NewOffsetWriter(part, from), (&blobFetch{blob: new}).fetch,
		ApplyOptions{From: from, Progress: func(l, f int64) { local, fetched = l, f }})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(part.b, new) {
		t.Fatal("resumed slot differs from the new blob")
	}
	if st.Local+st.Fetched != int64(len(new))-from || local != st.Local || fetched != st.Fetched {
		t.Errorf("resumed: stats %+v, progress %d/%d, want %d bytes", st, local, fetched, int64(len(new))-from)
	}
	if got, _ := want.VerifyPrefix(part); got != want.Size {
		t.Errorf("VerifyPrefix of the whole slot = %d, want %d", got, want.Size)
	}
}

type limitWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.n {
		n, _ := l.w.Write(p[:l.n])
		l.n = 0
		return n, l.err
	}
	l.n -= int64(len(p))
	return l.w.Write(p)
}

// BenchmarkDeltaSmallChange reports the bytes a 1 KiB insertion into a
// 30 MB slot costs to fetch.
func BenchmarkDeltaSmallChange(b *testing.B) {
	old, new := smallChange()
	haveIndex, _ := Build(bytes.NewReader(old))
	b.SetBytes(int64(len(new)))
	b.ResetTimer()
	var f *blobFetch
	for range b.N {
		_, _, f = assemble(b, old, new, haveIndex)
	}
	b.ReportMetric(float64(f.bytes), "fetched-bytes")
	b.ReportMetric(100*float64(f.bytes)/float64(len(new)), "fetched-%")
	b.ReportMetric(float64(len(f.ranges)), "ranges")
}

func BenchmarkBuild(b *testing.B) {
	data := random(20, 32<<20)
	b.SetBytes(int64(len(data)))
	for range b.N {
		if _, err := Build(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}
