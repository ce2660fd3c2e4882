package squashfs

import (
	"bytes"
	"compress/zlib"
	"errors"
	"io"
	"runtime"
	"sync"
)

// Data block size flags and limits.
const (
	// blockUncompressed marks a data block stored as is in an inode's
	// block list.
	blockUncompressed = 1 << 24
	// minSavingShift: a data block is stored compressed only when that
	// saves at least 1/64 of it (mksquashfs's rule is any saving). Blocks of
	// an already-compressed file then keep the file's bytes, so an update
	// that changes part of such a file still shares the rest with the old
	// image, and reading them costs no inflate.
	minSavingShift = 6
)

var zlibPool = sync.Pool{New: func() any {
	w, _ := zlib.NewWriterLevel(nil, zlib.BestCompression)
	return w
}}

// compress returns b compressed with zlib at level 9 if that saves enough
// (any saving for metadata, 1/64 for data) and true, or b itself and false.
// zlib's output depends only on its input and level, so images are
// reproducible.
func compress(b []byte, data bool) ([]byte, bool) {
	var out bytes.Buffer
	zw := zlibPool.Get().(*zlib.Writer)
	zw.Reset(&out)
	zw.Write(b) // a bytes.Buffer does not fail
	zw.Close()
	zlibPool.Put(zw)
	limit := len(b)
	if data {
		limit -= len(b) >> minSavingShift
	}
	if out.Len() < limit {
		return out.Bytes(), true
	}
	return b, false
}

// dataWriter writes files' data blocks one file after another,
// compressing up to GOMAXPROCS blocks at once.
type dataWriter struct {
	w    *countWriter
	bufs [][]byte
}

func newDataWriter(w *countWriter) *dataWriter {
	d := &dataWriter{w: w}
	for range max(runtime.GOMAXPROCS(0), 1) {
		d.bufs = append(d.bufs, make([]byte, blockSize))
	}
	return d
}

// file writes n's content as blocks and records where they are and their
// sizes in n. Every block is blockSize long but the last, which holds
// the tail end (squashfs without fragments).
func (d *dataWriter) file(n *node) error {
	r, err := n.entry.Open()
	if err != nil {
		return err
	}
	defer r.Close()
	n.start, n.size, n.sizes = uint64(d.w.n), 0, nil
	type result struct {
		b          []byte
		compressed bool
	}
	results := make([]result, len(d.bufs))
	for eof := false; !eof; {
		// Read a batch of blocks, then compress them in parallel and write
		// them in order.
		k := 0
		for ; k < len(d.bufs) && !eof; k++ {
			m, err := io.ReadFull(r, d.bufs[k])
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				eof = true
			} else if err != nil {
				return err
			}
			if m == 0 {
				break
			}
			d.bufs[k] = d.bufs[k][:m]
			n.size += uint64(m)
		}
		var wg sync.WaitGroup
		for i := range k {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b, c := compress(d.bufs[i], true)
				results[i] = result{b, c}
			}()
		}
		wg.Wait()
		for i := range k {
			res := results[i]
			if _, err := d.w.Write(res.b); err != nil {
				return err
			}
			size := uint32(len(res.b))
			if !res.compressed {
				size |= blockUncompressed
			}
			n.sizes = append(n.sizes, size)
			d.bufs[i] = d.bufs[i][:blockSize]
		}
	}
	return nil
}
