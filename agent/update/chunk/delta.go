package chunk

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
)

// Range is a closed byte range of the slot blob to fetch, as an HTTP
// Range request asks for it: bytes Offset..Last().
type Range struct {
	Offset, Length int64
}

// Last is the range's last byte (inclusive).
func (r Range) Last() int64 { return r.Offset + r.Length - 1 }

// String returns the range as an HTTP Range header value, bytes=a-b.
func (r Range) String() string { return fmt.Sprintf("bytes=%d-%d", r.Offset, r.Last()) }

// Coalescing limits for PlanWith.
const (
	// DefaultMaxGap is the largest run of locally available bytes between
	// two fetched chunks that is fetched anyway to save a request: about
	// what a request's round trip costs on a slow link.
	DefaultMaxGap = 32 << 10
	// DefaultMaxRange caps one coalesced range, so a retry after a cut
	// repeats little and progress stays visible.
	DefaultMaxRange = 8 << 20
)

// PlanOptions tune how fetched chunks are coalesced into ranges.
type PlanOptions struct {
	// MaxGap: fetched chunks separated by at most this many local bytes
	// are fetched as one range (default DefaultMaxGap; negative: only
	// adjacent fetched chunks are merged).
	MaxGap int64
	// MaxRange caps a range's length (default DefaultMaxRange); a single
	// chunk longer than it still makes one range.
	MaxRange int64
}

func (o PlanOptions) defaults() PlanOptions {
	if o.MaxGap == 0 {
		o.MaxGap = DefaultMaxGap
	}
	if o.MaxRange <= 0 {
		o.MaxRange = DefaultMaxRange
	}
	return o
}

// Delta is the plan for assembling a new slot: for each chunk of Want,
// whether it is copied from the local source or fetched, and the closed
// byte ranges of the slot blob to fetch. It is pure data (plus the local
// source it reads in Apply), so it can be shown or tested without a disk.
type Delta struct {
	// Want is the new slot's index.
	Want *Index
	// Local[i] is the offset in the local source of a chunk with
	// Want.Chunks[i]'s hash, or -1 when the chunk is fetched.
	Local []int64
	// Ranges are the byte ranges of the slot blob to fetch, in order,
	// each made of whole chunks of Want.
	Ranges []Range
	// LocalBytes and FetchBytes split Want.Size by source; FetchBytes
	// includes local chunks fetched anyway to fill a small gap.
	LocalBytes, FetchBytes int64
	// Rechunked says the local source was chunked while planning (no
	// usable index of it was given).
	Rechunked bool

	have io.ReaderAt
}

// Plan decides which of want's chunks can be copied from have, the local
// source (the active slot), and which must be fetched, coalesced with the
// default limits. haveIndex is have's index if the caller kept one (the
// index it committed with); with nil, or one cut with other sizes, have is
// read from byte 0 to its end and chunked like want — pass an
// *io.SectionReader bounded by the active slot's size. A haveIndex is not
// trusted: Apply checks every local chunk's hash before it uses it.
func Plan(want *Index, have io.ReaderAt, haveIndex *Index) (*Delta, error) {
	return PlanWith(want, have, haveIndex, PlanOptions{})
}

// PlanWith is Plan with chosen coalescing limits.
func PlanWith(want *Index, have io.ReaderAt, haveIndex *Index, opt PlanOptions) (*Delta, error) {
	opt = opt.defaults()
	if err := want.check(-1); err != nil {
		return nil, err
	}
	d := &Delta{Want: want, have: have, Local: make([]int64, len(want.Chunks))}
	if haveIndex == nil || haveIndex.Chunker != want.Chunker || haveIndex.Params() != want.Params() {
		if have == nil {
			haveIndex = &Index{}
		} else {
			var err error
			haveIndex, err = BuildWith(io.NewSectionReader(have, 0, math.MaxInt64), want.Params())
			if err != nil {
				return nil, fmt.Errorf("chunking the active slot to plan a delta: %w", err)
			}
			d.Rechunked = true
		}
	}
	at := make(map[Sum]int64, len(haveIndex.Chunks))
	for _, c := range haveIndex.Chunks {
		if _, ok := at[c.Sum]; !ok {
			at[c.Sum] = c.Offset
		}
	}
	for i, c := range want.Chunks {
		d.Local[i] = -1
		if o, ok := at[c.Sum]; ok && have != nil {
			d.Local[i] = o
		}
	}
	d.coalesce(opt)
	return d, nil
}

// coalesce turns the fetched chunks into ranges, pulling small local gaps
// into the fetch.
func (d *Delta) coalesce(opt PlanOptions) {
	chunks := d.Want.Chunks
	var cur *Range
	lastFetched := -1 // index of the last fetched chunk in cur
	for i, c := range chunks {
		if d.Local[i] >= 0 {
			continue
		}
		if cur != nil {
			gap := c.Offset - chunks[lastFetched].End()
			if gap <= max(opt.MaxGap, 0) && c.End()-cur.Offset <= opt.MaxRange {
				for j := lastFetched + 1; j < i; j++ {
					d.Local[j] = -1
				}
				cur.Length = c.End() - cur.Offset
				lastFetched = i
				continue
			}
		}
		d.Ranges = append(d.Ranges, Range{Offset: c.Offset, Length: c.Length})
		cur = &d.Ranges[len(d.Ranges)-1]
		lastFetched = i
	}
	for i, c := range chunks {
		if d.Local[i] >= 0 {
			d.LocalBytes += c.Length
		} else {
			d.FetchBytes += c.Length
		}
	}
}

// FetchFunc writes the bytes of r, a closed range of the slot blob, to w
// in order, each byte once (retrying and resuming on its own as it must).
// An error from w is final and must be returned, not retried.
type FetchFunc func(ctx context.Context, r Range, w io.Writer) error

// ApplyOptions tune Apply.
type ApplyOptions struct {
	// From resumes an assembly: chunks before this offset are taken as
	// written (find it with Index.VerifyPrefix) and w starts there. It
	// must be a chunk boundary of Want.
	From int64
	// Progress, if set, is called after each chunk with the bytes taken
	// from the local source and fetched so far in this call.
	Progress func(local, fetched int64)
}

// Stats says where the bytes Apply wrote came from.
type Stats struct {
	// Local bytes were copied from the local source; Fetched bytes came
	// from the registry.
	Local, Fetched int64
	// Refetched counts local chunks whose bytes did not match their hash
	// (the source changed since it was indexed) and were fetched instead.
	Refetched int
}

// Apply assembles the new slot into w, in order from opt.From to
// Want.Size: local chunks are read from the local source, the ranges are
// fetched with fetch, and every chunk's SHA-256 is checked before it is
// written. A local chunk that does not match is fetched instead; a fetched
// one that does not match stops Apply with an error. w is written
// sequentially (for a partition, use io.NewOffsetWriter(f, from)). Memory
// use is one chunk buffer, whatever the slot's size.
func (d *Delta) Apply(ctx context.Context, w io.Writer, fetch FetchFunc, opt ApplyOptions) (Stats, error) {
	var st Stats
	chunks := d.Want.Chunks
	i := 0
	for i < len(chunks) && chunks[i].Offset < opt.From {
		i++
	}
	at := d.Want.Size
	if i < len(chunks) {
		at = chunks[i].Offset
	}
	if opt.From < 0 || at != opt.From {
		return st, fmt.Errorf("resuming the slot at byte %d: not a chunk boundary (resume from Index.VerifyPrefix)", opt.From)
	}
	progress := func() {
		if opt.Progress != nil {
			opt.Progress(st.Local, st.Fetched)
		}
	}
	buf := make([]byte, d.Want.MaxSize)
	sink := &chunkWriter{d: d, w: w, buf: buf[:0], onChunk: func(n int64) { st.Fetched += n; progress() }}
	r := 0 // next range that may hold chunk i
	for i < len(chunks) {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		c := chunks[i]
		for r < len(d.Ranges) && d.Ranges[r].Last() < c.Offset {
			r++
		}
		if r < len(d.Ranges) && d.Ranges[r].Offset <= c.Offset {
			rg := d.Ranges[r]
			rg.Length -= c.Offset - rg.Offset // a resume may start inside a range
			rg.Offset = c.Offset
			n, err := sink.run(ctx, fetch, i, rg)
			if err != nil {
				return st, err
			}
			i += n
			continue
		}
		b := buf[:c.Length]
		if err := readFull(d.have, b, d.Local[i]); err == nil && sha256.Sum256(b) == c.Sum {
			if _, err := w.Write(b); err != nil {
				return st, fmt.Errorf("writing slot bytes %d..%d: %w", c.Offset, c.End()-1, err)
			}
			st.Local += c.Length
			progress()
			i++
			continue
		}
		// The active slot no longer holds what its index said: fetch it.
		st.Refetched++
		if _, err := sink.run(ctx, fetch, i, Range{Offset: c.Offset, Length: c.Length}); err != nil {
			return st, err
		}
		i++
	}
	return st, nil
}

// chunkWriter receives a fetched range's bytes in order, cuts them at
// Want's chunk boundaries, checks each chunk's hash and writes it on.
type chunkWriter struct {
	d       *Delta
	w       io.Writer
	buf     []byte
	onChunk func(int64)

	next, end int // chunk being filled and the one after the range
}

// run fetches rg, which starts at chunk i, and returns how many chunks it
// held.
func (cw *chunkWriter) run(ctx context.Context, fetch FetchFunc, i int, rg Range) (int, error) {
	chunks := cw.d.Want.Chunks
	cw.next, cw.end, cw.buf = i, i, cw.buf[:0]
	for cw.end < len(chunks) && chunks[cw.end].End() <= rg.Offset+rg.Length {
		cw.end++
	}
	if err := fetch(ctx, rg, cw); err != nil {
		return 0, fmt.Errorf("fetching slot %s: %w", rg, err)
	}
	if cw.next != cw.end {
		return 0, fmt.Errorf("fetching slot %s: the registry sent %d bytes less than asked", rg, chunks[cw.end-1].End()-chunks[cw.next].Offset-int64(len(cw.buf)))
	}
	return cw.end - i, nil
}

var errTooMuch = errors.New("more bytes than the range asked for")

func (cw *chunkWriter) Write(p []byte) (int, error) {
	chunks := cw.d.Want.Chunks
	n := 0
	for len(p) > 0 {
		if cw.next >= cw.end {
			return n, errTooMuch
		}
		c := chunks[cw.next]
		k := min(int(c.Length)-len(cw.buf), len(p))
		cw.buf = append(cw.buf, p[:k]...)
		p, n = p[k:], n+k
		if len(cw.buf) < int(c.Length) {
			break
		}
		if got := sha256.Sum256(cw.buf); got != c.Sum {
			return n, fmt.Errorf("chunk %d (slot bytes %d..%d) has sha256 %s, the chunk index says %s (the slot blob does not match its index: push the artifact again)",
				cw.next, c.Offset, c.End()-1, Sum(got), c.Sum)
		}
		if _, err := cw.w.Write(cw.buf); err != nil {
			return n, fmt.Errorf("writing slot bytes %d..%d: %w", c.Offset, c.End()-1, err)
		}
		cw.buf = cw.buf[:0]
		cw.next++
		cw.onChunk(c.Length)
	}
	return n, nil
}

// VerifyPrefix reads r (a slot being assembled) chunk by chunk from byte 0
// and returns the end of the longest run of chunks whose bytes match the
// index: where an interrupted Apply can resume. What was written before a
// power cut is re-verified, never trusted.
func (ix *Index) VerifyPrefix(r io.ReaderAt) (int64, error) {
	buf := make([]byte, ix.MaxSize)
	for _, c := range ix.Chunks {
		b := buf[:c.Length]
		if err := readFull(r, b, c.Offset); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return c.Offset, nil
			}
			return c.Offset, fmt.Errorf("reading slot bytes %d..%d to verify them: %w", c.Offset, c.End()-1, err)
		}
		if sha256.Sum256(b) != c.Sum {
			return c.Offset, nil
		}
	}
	return ix.Size, nil
}

// readFull fills b from r at off; a ReaderAt may report io.EOF along with
// a full read at the end of its data, which is no error here.
func readFull(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return err
}
