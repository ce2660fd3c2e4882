// Package compress writes and reads the compressed disk images `cairn
// build --compress` makes and `cairn flash` takes: .img.zst (zstd) and
// .img.xz (xz).
//
//	err := compress.File(ctx, "disk.img", "disk.img.zst", compress.Zstd)
//	r, err := compress.NewReader(f, compress.Zstd) // the raw image again
//
// Both formats are written the same way: the image is cut into fixed
// blocks of BlockSize bytes, the blocks are compressed in parallel, each
// as a complete zstd frame or xz stream, and written in order. A decoder
// reads concatenated frames (streams) as one image, so the files are
// ordinary .zst and .xz files (`zstd -t`, `xz -t`, `xz -dc`, bmaptool all
// accept them). The block size and the encoder settings are constants, so
// the same image gives the same bytes whatever the number of cores; only
// the speed depends on it. At most a few blocks per core are in memory,
// never the whole image.
package compress

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Format is a compression format.
type Format string

// The formats Cairn writes.
const (
	// None is an uncompressed image.
	None Format = ""
	// Zstd is zstd: fast to write and to read, the default choice.
	Zstd Format = "zstd"
	// Xz is xz (LZMA2): smaller, slower, what many flashing tools expect.
	Xz Format = "xz"
)

// BlockSize is how much of the image each frame (stream) holds. It is
// part of the output's bytes: changing it changes every compressed image.
const BlockSize = 16 << 20

// zstdLevel and xzDictCap are the encoder settings, fixed for the same reason.
const (
	zstdLevel = zstd.SpeedDefault
	xzDictCap = 8 << 20
)

// exts are the formats' file name endings.
var exts = map[Format]string{Zstd: ".zst", Xz: ".xz"}

// Formats are the names --compress accepts, sorted.
func Formats() []string {
	var names []string
	for f := range exts {
		names = append(names, string(f))
	}
	slices.Sort(names)
	return names
}

// Parse returns the format named s ("" is None).
func Parse(s string) (Format, error) {
	f := Format(s)
	if _, ok := exts[f]; ok || f == None {
		return f, nil
	}
	return None, fmt.Errorf("compression %q is not one Cairn writes (use --compress %s)", s, strings.Join(Formats(), " or "))
}

// Ext is the file name ending the format adds after .img: ".zst", ".xz",
// or "" for None.
func (f Format) Ext() string { return exts[f] }

// Detect names the format of a file by its name's ending: .zst or .xz,
// else None.
func Detect(name string) Format {
	for f, ext := range exts {
		if strings.HasSuffix(name, ext) {
			return f
		}
	}
	return None
}

// NewReader returns the decompressed content of r. Close it when done.
func NewReader(r io.Reader, f Format) (io.ReadCloser, error) {
	switch f {
	case None:
		return io.NopCloser(r), nil
	case Zstd:
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(1<<40))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return d.IOReadCloser(), nil
	case Xz:
		d, err := xz.ReaderConfig{DictCap: xzDictCap}.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("xz: %w (is it an .xz file?)", err)
		}
		return io.NopCloser(d), nil
	}
	return nil, fmt.Errorf("compression %q is not one Cairn reads (%s)", f, strings.Join(Formats(), ", "))
}

// File compresses the file src into dst (created or replaced) in format f,
// logging its progress. Workers are GOMAXPROCS.
func File(ctx context.Context, src, dst string, f Format) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("%w (is the output directory writable?)", err)
	}
	defer out.Close()
	p := &progress{log: slog.With("file", dst), total: st.Size(), start: time.Now(), every: 10 * time.Second}
	if err := Write(ctx, out, in, f, runtime.GOMAXPROCS(0), p.add); err != nil {
		return fmt.Errorf("compressing %s: %w", src, err)
	}
	if err := out.Sync(); err != nil {
		return err
	}
	p.done()
	return out.Close()
}

// Write compresses r into w in format f, BlockSize at a time on workers
// goroutines; done, when not nil, is told each block's input size once
// that block is written. The output does not depend on workers.
func Write(ctx context.Context, w io.Writer, r io.Reader, f Format, workers int, done func(n int)) error {
	enc, err := newEncoder(f, workers)
	if err != nil {
		return err
	}
	defer enc.close()
	workers = max(workers, 1)
	type result struct {
		in, out []byte
		err     error
	}
	type job struct {
		in  []byte
		res chan result
	}
	pool := sync.Pool{New: func() any { return make([]byte, BlockSize) }}
	jobs := make(chan job)
	// order holds the results in input order; its capacity bounds the
	// blocks in flight to two per worker.
	order := make(chan chan result, 2*workers)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range jobs {
				out, err := enc.block(j.in)
				j.res <- result{in: j.in, out: out, err: err}
			}
		})
	}
	readErr := make(chan error, 1)
	go func() {
		defer close(order)
		defer close(jobs)
		for {
			buf := pool.Get().([]byte)[:BlockSize]
			n, err := io.ReadFull(r, buf)
			if n > 0 {
				res := make(chan result, 1)
				select {
				case order <- res:
				case <-ctx.Done():
					readErr <- ctx.Err()
					return
				}
				jobs <- job{in: buf[:n], res: res}
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				readErr <- nil
				return
			}
			if err != nil {
				readErr <- err
				return
			}
			if err := ctx.Err(); err != nil {
				readErr <- err
				return
			}
		}
	}()
	var werr error
	for res := range order {
		r := <-res
		if werr == nil {
			werr = r.err
			if werr == nil {
				_, werr = w.Write(r.out)
			}
			if werr == nil && done != nil {
				done(len(r.in))
			}
			if werr != nil {
				cancel()
			}
		}
		pool.Put(r.in[:cap(r.in)])
	}
	wg.Wait()
	return cmpErr(werr, <-readErr)
}

// cmpErr is the first error that is not nil.
func cmpErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// encoder compresses one block into one complete frame or stream.
type encoder struct {
	block func(in []byte) ([]byte, error)
	close func()
}

func newEncoder(f Format, workers int) (*encoder, error) {
	switch f {
	case Zstd:
		// One encoder serves every worker: EncodeAll is safe to call
		// concurrently, up to the encoder's concurrency, and its output
		// depends on the input and the options only.
		z, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstdLevel), zstd.WithEncoderConcurrency(max(workers, 1)), zstd.WithEncoderCRC(true))
		if err != nil {
			return nil, err
		}
		return &encoder{
			block: func(in []byte) ([]byte, error) { return z.EncodeAll(in, nil), nil },
			close: func() { z.Close() },
		}, nil
	case Xz:
		cfg := xz.WriterConfig{DictCap: xzDictCap, CheckSum: xz.CRC64}
		if err := cfg.Verify(); err != nil {
			return nil, err
		}
		return &encoder{
			block: func(in []byte) ([]byte, error) {
				var b bytes.Buffer
				b.Grow(len(in) / 4)
				x, err := cfg.NewWriter(&b)
				if err != nil {
					return nil, err
				}
				if _, err := x.Write(in); err != nil {
					return nil, err
				}
				if err := x.Close(); err != nil {
					return nil, err
				}
				return b.Bytes(), nil
			},
			close: func() {},
		}, nil
	}
	return nil, fmt.Errorf("compression %q is not one Cairn writes (%s)", f, strings.Join(Formats(), ", "))
}

// progress logs how far a long compression is, at most once per every.
type progress struct {
	log          *slog.Logger
	total, bytes int64
	start, last  time.Time
	every        time.Duration
}

func (p *progress) add(n int) {
	p.bytes += int64(n)
	if now := time.Now(); now.Sub(p.last) >= p.every && now.Sub(p.start) >= p.every {
		p.last = now
		p.log.Info("compressing", "done", fmt.Sprintf("%d%%", p.bytes*100/max(p.total, 1)), "MiB", p.bytes>>20, "of", p.total>>20)
	}
}

func (p *progress) done() {
	p.log.Info("compressed", "MiB", p.total>>20, "took", time.Since(p.start).Round(time.Millisecond))
}
