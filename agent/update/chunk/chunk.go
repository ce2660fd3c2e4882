// Package chunk cuts a slot image into content-defined chunks, writes and
// reads the chunk index that travels with an update artifact
// (artifact.ChunksMediaType), and plans and assembles a delta: the new slot
// built from chunks the node already has in its active slot plus the few
// byte ranges of the slot blob it must fetch.
//
// The builder indexes the slot it pushes:
//
//	ix, err := chunk.Build(slotFile)
//	body, err := ix.Marshal() // the chunk layer's blob
//
// The agent plans against its active slot and assembles the inactive one:
//
//	want, err := chunk.Parse(body, partitionSize)
//	d, err := chunk.Plan(want, activeSlot, nil) // nil: chunk activeSlot now
//	err = d.Apply(ctx, io.NewOffsetWriter(inactive, 0), fetch, chunk.ApplyOptions{})
//
// where fetch reads a closed byte range of the slot blob from the registry.
//
// Chunk boundaries come from a gear rolling hash in the style of FastCDC
// (Xia et al., USENIX ATC 2016): a 64-bit hash updated per byte as
// h = h<<1 + gear[b], a cut where the hash's top bits are all zero, a
// stricter mask before the average size and a looser one after it
// ("normalized chunking"), and hard minimum and maximum sizes. Because a
// boundary depends only on the 64 bytes before it, an insertion moves only
// the chunks around it; the rest keep their bytes and hashes and are copied
// locally instead of downloaded.
//
// Everything streams: Build and Apply hold at most a few chunk-sized
// buffers (the maximum chunk is 256 KiB by default), never a slot.
package chunk

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
)

// Chunker names the boundary algorithm in the index. An index with another
// name was cut differently; Plan re-chunks the local slot rather than trust
// its hashes to line up.
const Chunker = "gear-v1"

// Default chunk sizes: Build cuts chunks of at least DefaultMinSize and at
// most DefaultMaxSize bytes, DefaultAvgSize on average.
const (
	DefaultMinSize = 16 << 10
	DefaultAvgSize = 64 << 10
	DefaultMaxSize = 256 << 10
)

// Limits on the sizes an index may declare. The upper one bounds the buffer
// Apply holds for one chunk; the lower one bounds the number of chunks.
const (
	MinChunkLimit = 1 << 10
	MaxChunkLimit = 4 << 20
)

// Params are the chunk sizes of one index.
type Params struct {
	// MinSize and MaxSize bound every chunk but the last (which may be
	// shorter than MinSize).
	MinSize, MaxSize int
	// AvgSize is the expected chunk size, a power of two between them.
	AvgSize int
}

// DefaultParams are the sizes Build uses.
var DefaultParams = Params{MinSize: DefaultMinSize, AvgSize: DefaultAvgSize, MaxSize: DefaultMaxSize}

// Check reports whether p is a usable set of sizes.
func (p Params) Check() error {
	if p.MinSize < MinChunkLimit || p.MaxSize > MaxChunkLimit {
		return fmt.Errorf("chunk sizes min %d max %d are outside %d..%d", p.MinSize, p.MaxSize, MinChunkLimit, MaxChunkLimit)
	}
	if p.AvgSize&(p.AvgSize-1) != 0 || p.AvgSize < p.MinSize || p.AvgSize > p.MaxSize || p.MinSize > p.MaxSize {
		return fmt.Errorf("chunk sizes min %d avg %d max %d: want min ≤ avg ≤ max with avg a power of two", p.MinSize, p.AvgSize, p.MaxSize)
	}
	return nil
}

// gear maps each byte value to a pseudo-random 64-bit number. It is derived
// from SHA-256 so that anyone can recompute it and so that it never changes
// under an index already pushed: entry i is the first 8 bytes (big endian)
// of SHA-256("cairn chunk gear v1" || i).
var gear = func() (g [256]uint64) {
	for i := range g {
		s := sha256.Sum256(append([]byte("cairn chunk gear v1"), byte(i)))
		g[i] = binary.BigEndian.Uint64(s[:8])
	}
	return g
}()

// masks returns the strict (before the average size) and loose (after it)
// cut masks: the top log2(avg)+2 and log2(avg)-2 bits of the hash. The top
// bits of a gear hash depend on all of the last 64 bytes.
func (p Params) masks() (strict, loose uint64) {
	n := bits.TrailingZeros(uint(p.AvgSize))
	return ^uint64(0) << (64 - (n + 2)), ^uint64(0) << (64 - (n - 2))
}

// cut returns the length of the chunk that starts at data[0]. data holds
// at least MaxSize bytes, or everything left of the input.
func (p Params) cut(data []byte) int {
	n := len(data)
	if n <= p.MinSize {
		return n
	}
	if n > p.MaxSize {
		n = p.MaxSize
	}
	strict, loose := p.masks()
	// Start the hash 64 bytes before the first place a cut may fall, so the
	// decision there already sees a full window.
	i := p.MinSize - 64
	if i < 0 {
		i = 0
	}
	var h uint64
	for ; i < p.MinSize; i++ {
		h = h<<1 + gear[data[i]]
	}
	normal := p.AvgSize
	if normal > n {
		normal = n
	}
	for ; i < normal; i++ {
		h = h<<1 + gear[data[i]]
		if h&strict == 0 {
			return i + 1
		}
	}
	for ; i < n; i++ {
		h = h<<1 + gear[data[i]]
		if h&loose == 0 {
			return i + 1
		}
	}
	return n
}

// chunker reads r and returns its chunks one after another.
type chunker struct {
	r          io.Reader
	p          Params
	buf        []byte
	start, end int
	eof        bool
	off        int64
}

func newChunker(r io.Reader, p Params) *chunker {
	return &chunker{r: r, p: p, buf: make([]byte, 2*p.MaxSize)}
}

// next returns the next chunk's offset and bytes (valid until the next
// call), or io.EOF after the last.
func (c *chunker) next() (int64, []byte, error) {
	if c.end-c.start < c.p.MaxSize && !c.eof {
		copy(c.buf, c.buf[c.start:c.end])
		c.end -= c.start
		c.start = 0
		for c.end < len(c.buf) && !c.eof {
			n, err := c.r.Read(c.buf[c.end:])
			c.end += n
			if errors.Is(err, io.EOF) {
				c.eof = true
			} else if err != nil {
				return 0, nil, err
			}
		}
	}
	if c.start == c.end {
		return 0, nil, io.EOF
	}
	n := c.p.cut(c.buf[c.start:c.end])
	b := c.buf[c.start : c.start+n]
	off := c.off
	c.start += n
	c.off += int64(n)
	return off, b, nil
}

// Build reads r to its end and returns its chunk index with the default
// sizes. It holds two maximum-sized chunks in memory, whatever r's size.
func Build(r io.Reader) (*Index, error) { return BuildWith(r, DefaultParams) }

// BuildWith is Build with chosen chunk sizes.
func BuildWith(r io.Reader, p Params) (*Index, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	ix := &Index{Chunker: Chunker, MinSize: p.MinSize, AvgSize: p.AvgSize, MaxSize: p.MaxSize}
	c := newChunker(r, p)
	for {
		off, b, err := c.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("chunking at byte %d: %w", c.off, err)
		}
		ix.Chunks = append(ix.Chunks, Chunk{Offset: off, Length: int64(len(b)), Sum: sha256.Sum256(b)})
		ix.Size = off + int64(len(b))
	}
	return ix, nil
}
