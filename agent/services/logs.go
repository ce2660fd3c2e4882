package services

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// Ring keeps the last Size bytes written to it, for `logs`. Readers from
// NewReader see what is kept and, when following, what is written later. A
// reader that falls more than the buffer behind skips ahead to the oldest
// kept byte.
type Ring struct {
	mu      sync.Mutex
	buf     []byte
	written int64         // bytes ever written; buf holds [written-len, written)
	changed chan struct{} // closed and replaced on every write
}

// NewRing returns a Ring that keeps the last size bytes.
func NewRing(size int) *Ring {
	return &Ring{buf: make([]byte, 0, size), changed: make(chan struct{})}
}

// Write keeps p (or its tail) and wakes followers. It never fails.
func (r *Ring) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(p)
	size := cap(r.buf)
	if len(p) >= size {
		r.buf = append(r.buf[:0], p[len(p)-size:]...)
	} else {
		if over := len(r.buf) + len(p) - size; over > 0 {
			copy(r.buf, r.buf[over:])
			r.buf = r.buf[:len(r.buf)-over]
		}
		r.buf = append(r.buf, p...)
	}
	r.written += int64(n)
	close(r.changed)
	r.changed = make(chan struct{})
	return n, nil
}

// Bytes returns a copy of what the Ring keeps.
func (r *Ring) Bytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]byte(nil), r.buf...)
}

// NewReader returns a reader of the kept bytes, from the start of their
// last tail lines (all of them when tail is 0). Without follow it ends
// (EOF) after them; with follow it waits for more until closed.
func (r *Ring) NewReader(follow bool, tail int) io.ReadCloser {
	r.mu.Lock()
	defer r.mu.Unlock()
	start := r.written - int64(len(r.buf))
	if tail > 0 {
		start += int64(tailStart(r.buf, tail))
	}
	return &ringReader{r: r, off: start, end: r.written, follow: follow, closed: make(chan struct{})}
}

// tailStart is the offset in b of the first of its last n lines (a last
// line without its newline counts).
func tailStart(b []byte, n int) int {
	i := len(b)
	if i > 0 && b[i-1] == '\n' {
		i-- // the final newline ends the last line
	}
	for ; n > 0; n-- {
		j := bytes.LastIndexByte(b[:i], '\n')
		if j < 0 {
			return 0
		}
		i = j
	}
	return i + 1
}

type ringReader struct {
	r         *Ring
	off, end  int64 // next byte to read; end of a non-following read
	follow    bool
	closed    chan struct{}
	closeOnce sync.Once
}

func (rr *ringReader) Read(p []byte) (int, error) {
	for {
		select {
		case <-rr.closed:
			return 0, io.EOF
		default:
		}
		rr.r.mu.Lock()
		oldest := rr.r.written - int64(len(rr.r.buf))
		if rr.off < oldest {
			rr.off = oldest // fell behind: skip what was dropped
		}
		limit := rr.r.written
		if !rr.follow {
			limit = min(limit, rr.end)
		}
		if rr.off < limit {
			n := copy(p, rr.r.buf[rr.off-oldest:limit-oldest])
			rr.off += int64(n)
			rr.r.mu.Unlock()
			return n, nil
		}
		changed := rr.r.changed
		rr.r.mu.Unlock()
		if !rr.follow {
			return 0, io.EOF
		}
		select {
		case <-changed:
		case <-rr.closed:
			return 0, io.EOF
		}
	}
}

// Close ends the reader; a Read blocked in it returns EOF.
func (rr *ringReader) Close() error {
	rr.closeOnce.Do(func() { close(rr.closed) })
	return nil
}

// RotatingFile is a log file capped in size: when a write would take Path
// past MaxSize, Path becomes Path.1 (Path.1 becomes Path.2, and so on up to
// Keep files in all, the oldest dropped) and a new Path is started.
type RotatingFile struct {
	Path    string
	MaxSize int64 // bytes per file
	Keep    int   // files kept, the current one included (at least 1)

	mu   sync.Mutex
	f    *os.File
	size int64
}

// Write appends p, rotating first when p would not fit. A single write
// larger than MaxSize is written whole into a fresh file.
func (w *RotatingFile) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		if err := w.open(); err != nil {
			return 0, err
		}
	}
	if w.size > 0 && w.size+int64(len(p)) > w.MaxSize {
		if err := w.rotate(); err != nil {
			return 0, err
		}
	}
	n, err := w.f.Write(p)
	w.size += int64(n)
	return n, err
}

func (w *RotatingFile) open() error {
	if err := os.MkdirAll(filepath.Dir(w.Path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(w.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	w.f, w.size = f, fi.Size()
	return nil
}

func (w *RotatingFile) rotate() error {
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("rotate %s: %w", w.Path, err)
	}
	w.f = nil
	keep := max(w.Keep, 1)
	os.Remove(fmt.Sprintf("%s.%d", w.Path, keep-1))
	for i := keep - 2; i >= 1; i-- {
		os.Rename(fmt.Sprintf("%s.%d", w.Path, i), fmt.Sprintf("%s.%d", w.Path, i+1))
	}
	if keep > 1 {
		if err := os.Rename(w.Path, w.Path+".1"); err != nil {
			return fmt.Errorf("rotate %s: %w", w.Path, err)
		}
	} else if err := os.Remove(w.Path); err != nil {
		return fmt.Errorf("rotate %s: %w", w.Path, err)
	}
	return w.open()
}

// Close closes the current file; a later Write opens it again.
func (w *RotatingFile) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// logWriter sends a service's output to its ring and its file; a full or
// broken disk never blocks the service.
type logWriter struct {
	ring *Ring
	file *RotatingFile
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.ring.Write(p)
	w.file.Write(p)
	return len(p), nil
}
