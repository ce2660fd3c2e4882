package chunk

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Index lists a blob's content-defined chunks in order. It is the chunk
// layer of an update artifact (artifact.ChunksMediaType) as JSON, one chunk
// a line so that `crane blob REF@DIGEST` reads like a table:
//
//	{"chunker":"gear-v1","size":196608,"minSize":16384,"avgSize":65536,"maxSize":262144,"chunks":[
//	{"off":0,"len":70113,"sha256":"9f2c…"},
//	{"off":70113,"len":126495,"sha256":"04ab…"}
//	]}
type Index struct {
	// Chunker names the boundary algorithm (Chunker for this package).
	Chunker string `json:"chunker"`
	// Size is the blob's length: the sum of the chunks' lengths.
	Size int64 `json:"size"`
	// MinSize, AvgSize and MaxSize are the sizes the blob was cut with.
	MinSize int `json:"minSize"`
	AvgSize int `json:"avgSize"`
	MaxSize int `json:"maxSize"`
	// Chunks cover the blob from byte 0 without gaps or overlaps.
	Chunks []Chunk `json:"chunks"`
}

// Chunk is one chunk of a blob.
type Chunk struct {
	// Offset is where the chunk starts in the blob; Length its size.
	Offset int64 `json:"off"`
	Length int64 `json:"len"`
	// Sum is the SHA-256 of the chunk's bytes.
	Sum Sum `json:"sha256"`
}

// End is the offset just past the chunk.
func (c Chunk) End() int64 { return c.Offset + c.Length }

// Sum is a SHA-256, written as 64 lowercase hex digits.
type Sum [32]byte

// String returns the sum in hex.
func (s Sum) String() string { return hex.EncodeToString(s[:]) }

// MarshalText writes the sum in hex.
func (s Sum) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads 64 lowercase hex digits.
func (s *Sum) UnmarshalText(b []byte) error {
	if len(b) != 64 || bytes.ContainsFunc(b, func(r rune) bool { return !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') }) {
		return fmt.Errorf("chunk hash %q is not 64 lowercase hex digits", trunc(b))
	}
	_, err := hex.Decode(s[:], b)
	return err
}

func trunc(b []byte) string {
	if len(b) > 70 {
		return string(b[:70]) + "…"
	}
	return string(b)
}

// Params returns the sizes the index was cut with.
func (ix *Index) Params() Params {
	return Params{MinSize: ix.MinSize, AvgSize: ix.AvgSize, MaxSize: ix.MaxSize}
}

// ErrUnsupported is returned (wrapped) by Parse for an index cut with a
// chunker this agent does not know; fall back to a full download.
var ErrUnsupported = errors.New("chunk index format not supported")

// Marshal encodes the index as the chunk layer's JSON. It checks the index
// first, so what it writes is what Parse accepts.
func (ix *Index) Marshal() ([]byte, error) {
	if err := ix.check(-1); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Grow(128 + len(ix.Chunks)*100)
	fmt.Fprintf(&b, `{"chunker":%q,"size":%d,"minSize":%d,"avgSize":%d,"maxSize":%d,"chunks":[`,
		ix.Chunker, ix.Size, ix.MinSize, ix.AvgSize, ix.MaxSize)
	for i, c := range ix.Chunks {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n{\"off\":")
		b.WriteString(strconv.FormatInt(c.Offset, 10))
		b.WriteString(",\"len\":")
		b.WriteString(strconv.FormatInt(c.Length, 10))
		b.WriteString(",\"sha256\":\"")
		b.WriteString(c.Sum.String())
		b.WriteString("\"}")
	}
	b.WriteString("\n]}\n")
	return b.Bytes(), nil
}

// Parse decodes a chunk layer from a registry and checks it as hostile
// input: a known chunker, sane sizes, at most max bytes in all (pass the
// target partition's size), chunks contiguous from byte 0 whose lengths
// lie within MinSize..MaxSize (the last may be shorter) and add up to
// Size. Unknown fields are refused.
func Parse(b []byte, max int64) (*Index, error) {
	var ix Index
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&ix); err != nil {
		return nil, fmt.Errorf("chunk index is not valid JSON: %v (not a Cairn chunk layer?)", err)
	}
	if d.More() {
		return nil, fmt.Errorf("chunk index has data after its JSON object (not a Cairn chunk layer?)")
	}
	if err := ix.check(max); err != nil {
		return nil, err
	}
	return &ix, nil
}

// check validates the index; max < 0 means no size cap.
func (ix *Index) check(max int64) error {
	if ix.Chunker != Chunker {
		return fmt.Errorf("chunk index was cut with %q, this agent knows %q: %w (the upgrade downloads the whole slot instead)", trunc([]byte(ix.Chunker)), Chunker, ErrUnsupported)
	}
	if err := ix.Params().Check(); err != nil {
		return fmt.Errorf("chunk index: %w", err)
	}
	if ix.Size < 0 || (max >= 0 && ix.Size > max) {
		return fmt.Errorf("chunk index describes %d bytes, more than the %d-byte slot partition (or negative)", ix.Size, max)
	}
	if limit := ix.Size/int64(ix.MinSize) + 1; int64(len(ix.Chunks)) > limit {
		return fmt.Errorf("chunk index has %d chunks, more than %d bytes in chunks of at least %d can hold", len(ix.Chunks), ix.Size, ix.MinSize)
	}
	var off int64
	for i, c := range ix.Chunks {
		if c.Offset != off {
			return fmt.Errorf("chunk index: chunk %d starts at byte %d, want %d (chunks must be contiguous from 0)", i, c.Offset, off)
		}
		last := i == len(ix.Chunks)-1
		if c.Length > int64(ix.MaxSize) || c.Length < 1 || (!last && c.Length < int64(ix.MinSize)) {
			return fmt.Errorf("chunk index: chunk %d at byte %d has length %d, outside %d..%d", i, c.Offset, c.Length, ix.MinSize, ix.MaxSize)
		}
		off += c.Length
	}
	if off != ix.Size {
		return fmt.Errorf("chunk index: chunks add up to %d bytes, the index says %d", off, ix.Size)
	}
	return nil
}
