// Package flash writes a Cairn disk image onto a card or disk (`cairn
// flash`): a raw .img, or one compressed as .img.zst or .img.xz, writing
// only the blocks its block map lists, then reads every written range
// back from the device and compares its SHA-256 with the image's.
//
//	im, err := flash.OpenImage("out/edge.img.zst", flash.ImageOptions{}) // finds out/edge.bmap
//	dev, err := flash.CheckDevice("/dev/sdb", im.Size)                    // refuses a disk in use
//	res, err := flash.Flash(ctx, im, dev, flash.Options{NodeFile: nodeYAML})
//
// The steps are separate so the command can ask before writing: OpenImage
// and CheckDevice only read, and refuse, naming why, a device that is not
// a block device, is mounted or in use, holds the running system, or is
// smaller than the image. Flash opens the device exclusively (the kernel
// then refuses it while anything mounts it), writes with large buffers
// while the kernel writes back behind it (so the progress it logs is what
// reached the device, not the page cache), syncs, drops the device's
// cache, verifies, and then writes the per-node file, if any, onto the
// flashed disk's ESP.
package flash

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/builder/disk"
	"golang.org/x/sys/unix"
)

// bufSize is the size of each write: large, so a card sees few requests.
const bufSize = 4 << 20

// chunk is the most of the image without a block map that one checksum
// covers, so a mismatch names where it is.
const chunk = 64 << 20

// writeBehind is how much written data may wait in the page cache before
// Flash waits for it to reach the device.
const writeBehind = 32 << 20

// Options are a flash's settings besides the image and the device.
type Options struct {
	// NodeFile, when not nil, is written onto the flashed disk's ESP as
	// the per-node file (contract.NodeFileName) after the verification.
	NodeFile []byte
	// Progress is how often progress is logged; 0 means every 5 s.
	Progress time.Duration
	// Log receives the progress; nil is slog.Default.
	Log *slog.Logger
}

// Result is what Flash did.
type Result struct {
	// Written is the bytes written and verified; Ranges the ranges they form.
	Written int64
	Ranges  int
	// Took is the time to write and sync; Verify the time to read back.
	Took, Verify time.Duration
}

// extent is a range of the image to write, with its expected SHA-256
// ("" when only the write tells it).
type extent struct {
	off, n int64
	sum    string
}

// plan lists the image's ranges to write: its block map's, or the whole
// image in chunks.
func (im *Image) plan() []extent {
	var es []extent
	if im.Map != nil {
		for _, r := range im.Map.Ranges {
			off, n := im.Map.Extent(r)
			if n > 0 {
				es = append(es, extent{off: off, n: n, sum: r.SHA256})
			}
		}
		return es
	}
	for off := int64(0); off < im.Size; off += chunk {
		es = append(es, extent{off: off, n: min(chunk, im.Size-off)})
	}
	return es
}

// Flash writes im onto d, verifies it and writes opt.NodeFile. d must
// come from CheckDevice; the device is checked to be the same one when
// it is opened.
func Flash(ctx context.Context, im *Image, d *Device, opt Options) (*Result, error) {
	log := opt.Log
	if log == nil {
		log = slog.Default()
	}
	if opt.Progress == 0 {
		opt.Progress = 5 * time.Second
	}
	// O_EXCL: the kernel refuses a block device that is mounted, or has a
	// mounted partition, and keeps it from being mounted while we write.
	f, err := os.OpenFile(d.Path, os.O_RDWR|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s to write: %w (is it mounted or in use? nothing was written)", d, err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || uint64(st.Rdev) != d.Dev {
		return nil, fmt.Errorf("%s changed since it was checked (a card swapped?): run cairn flash again; nothing was written", d.Path)
	}
	extents := im.plan()
	var total int64
	for _, e := range extents {
		total += e.n
	}
	log.Info("flashing", "image", im.Path, "device", d.String(), "bmap", im.BmapPath, "write", humanBytes(total), "of", humanBytes(im.Size))

	start := time.Now()
	prog := newProgress(log, "writing", total, opt.Progress)
	if err := write(ctx, im, f, extents, prog); err != nil {
		return nil, fmt.Errorf("flashing %s onto %s: %w", im.Path, d.Path, err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("syncing %s: %w (the card may be faulty or was removed)", d.Path, err)
	}
	res := &Result{Written: total, Ranges: len(extents), Took: time.Since(start)}
	prog.done()

	vstart := time.Now()
	if err := dropCache(f); err != nil {
		return nil, fmt.Errorf("dropping %s's cache before verifying: %w", d.Path, err)
	}
	if err := verify(ctx, f, extents, newProgress(log, "verifying", total, opt.Progress)); err != nil {
		return nil, fmt.Errorf("verifying %s: %w", d.Path, err)
	}
	res.Verify = time.Since(vstart)
	log.Info("verified", "device", d.Path, "bytes", total, "ranges", len(extents), "took", res.Verify.Round(time.Millisecond))

	if opt.NodeFile != nil {
		if err := writeNodeFile(f, opt.NodeFile); err != nil {
			return nil, fmt.Errorf("%s is flashed and verified, but its per-node file is not written: %w", d.Path, err)
		}
		log.Info("node file written", "device", d.Path, "file", contract.NodeFileName)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("syncing %s: %w", d.Path, err)
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	rereadPartitions(d.Path, log)
	return res, nil
}

// piece is one buffer of the image on its way to the device.
type piece struct {
	off int64
	b   []byte
}

// write reads the extents from the image, checks each against its
// checksum, fills in the checksums the image has none of, and writes
// them. Reading (and decompressing) runs beside writing.
func write(ctx context.Context, im *Image, f *os.File, extents []extent, prog *progress) error {
	src, err := im.open()
	if err != nil {
		return err
	}
	defer src.Close()
	free := make(chan []byte, 3)
	for range cap(free) {
		free <- alignedBuf(bufSize)
	}
	full := make(chan piece, cap(free))
	readErr := make(chan error, 1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		defer close(full)
		readErr <- readExtents(ctx, im, src, extents, free, full)
	}()
	w := &behindWriter{f: f}
	var werr error
	for p := range full {
		if werr == nil {
			if werr = w.writeAt(p.b, p.off); werr != nil {
				cancel()
			} else {
				prog.add(int64(len(p.b)))
			}
		}
		free <- p.b[:cap(p.b)]
	}
	if err := <-readErr; err != nil && !(werr != nil && errors.Is(err, context.Canceled)) {
		return err
	}
	if werr != nil {
		return werr
	}
	return w.flush()
}

// readExtents sends the image's extents in buffers from free to full.
func readExtents(ctx context.Context, im *Image, src source, extents []extent, free chan []byte, full chan<- piece) error {
	var pos int64
	for i := range extents {
		e := &extents[i]
		if err := src.skip(e.off - pos); err != nil {
			return fmt.Errorf("image %s: %w", im.Path, err)
		}
		pos = e.off
		h := sha256.New()
		for left := e.n; left > 0; {
			var b []byte
			select {
			case b = <-free:
			case <-ctx.Done():
				return ctx.Err()
			}
			b = b[:min(left, int64(len(b)))]
			if _, err := io.ReadFull(src, b); err != nil {
				return fmt.Errorf("image %s ends or fails at byte %d, inside the range at %d: %w (is the download complete?)", im.Path, pos, e.off, err)
			}
			h.Write(b)
			full <- piece{off: pos, b: b}
			pos += int64(len(b))
			left -= int64(len(b))
		}
		sum := hex.EncodeToString(h.Sum(nil))
		if e.sum != "" && e.sum != sum {
			return fmt.Errorf("image %s: bytes %d-%d do not match the block map %s: the image or its map is damaged, or they are not of the same build (download both again)", im.Path, e.off, e.off+e.n-1, im.BmapPath)
		}
		e.sum = sum
	}
	// Read to the end: a compressed image's last checksum is there, and
	// an image longer than its block map says is not the map's.
	n, err := io.Copy(io.Discard, src)
	if err != nil {
		return fmt.Errorf("image %s: %w", im.Path, err)
	}
	if pos+n != im.Size && im.Compression != "" {
		return fmt.Errorf("image %s holds %d bytes, its block map %s says %d: they are not of the same build", im.Path, pos+n, im.BmapPath, im.Size)
	}
	return nil
}

// behindWriter writes and has the kernel write back right behind it, so
// that at most writeBehind bytes wait in the page cache: progress then
// counts what reached the device, and flashing does not fill the memory.
type behindWriter struct {
	f       *os.File
	pending []span // written, not yet waited for
	queued  int64
}

// span is a byte range of the device.
type span struct{ off, n int64 }

func (w *behindWriter) writeAt(b []byte, off int64) error {
	if _, err := w.f.WriteAt(b, off); err != nil {
		return fmt.Errorf("writing at byte %d: %w (the card may be faulty, full or removed)", off, err)
	}
	fd := int(w.f.Fd())
	n := int64(len(b))
	_ = unix.SyncFileRange(fd, off, n, unix.SYNC_FILE_RANGE_WRITE) // start write-back
	w.pending = append(w.pending, span{off, n})
	w.queued += n
	for w.queued > writeBehind {
		if err := w.wait(); err != nil {
			return err
		}
	}
	return nil
}

// wait waits for the oldest pending write to reach the device and drops
// it from the page cache.
func (w *behindWriter) wait() error {
	p := w.pending[0]
	n := p.n
	w.pending = w.pending[1:]
	w.queued -= n
	fd := int(w.f.Fd())
	if err := unix.SyncFileRange(fd, p.off, n, unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER); err != nil && !errors.Is(err, unix.ENOSYS) {
		return fmt.Errorf("writing at byte %d: %w (the card may be faulty or removed)", p.off, err)
	}
	_ = unix.Fadvise(fd, p.off, n, unix.FADV_DONTNEED)
	return nil
}

func (w *behindWriter) flush() error {
	for len(w.pending) > 0 {
		if err := w.wait(); err != nil {
			return err
		}
	}
	return nil
}

// dropCache empties the kernel's cache of the device, so the verification
// reads the card, not what was just written to memory.
func dropCache(f *os.File) error {
	fd := int(f.Fd())
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.BLKFLSBUF, 0); errno != 0 {
		return fmt.Errorf("BLKFLSBUF: %w", errno)
	}
	return unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED)
}

// verify reads each extent back and compares its SHA-256. Reading runs
// beside hashing, which is as slow as a fast card.
func verify(ctx context.Context, f *os.File, extents []extent, prog *progress) error {
	free := make(chan []byte, 3)
	for range cap(free) {
		free <- alignedBuf(bufSize)
	}
	full := make(chan []byte, cap(free))
	readErr := make(chan error, 1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		defer close(full)
		readErr <- func() error {
			for _, e := range extents {
				for done := int64(0); done < e.n; {
					var b []byte
					select {
					case b = <-free:
					case <-ctx.Done():
						return ctx.Err()
					}
					b = b[:min(e.n-done, int64(len(b)))]
					if _, err := f.ReadAt(b, e.off+done); err != nil {
						return fmt.Errorf("reading back bytes %d-%d: %w (the card may be faulty)", e.off, e.off+e.n-1, err)
					}
					full <- b
					done += int64(len(b))
				}
			}
			return nil
		}()
	}()
	var bad error
	for _, e := range extents {
		h := sha256.New()
		for done := int64(0); done < e.n; {
			b, ok := <-full
			if !ok {
				return <-readErr
			}
			h.Write(b)
			done += int64(len(b))
			free <- b[:cap(b)]
		}
		if sum := hex.EncodeToString(h.Sum(nil)); sum != e.sum && bad == nil {
			bad = fmt.Errorf("bytes %d-%d read back differ from the image: the card is faulty or counterfeit (smaller than it claims); use another card", e.off, e.off+e.n-1)
			cancel()
			break
		}
		prog.add(e.n)
	}
	if bad != nil {
		for b := range full {
			free <- b[:cap(b)]
		}
		<-readErr
		return bad
	}
	return <-readErr
}

// writeNodeFile writes the per-node file onto the ESP of the disk in f,
// found as cairn provision finds it, and reads it back.
func writeNodeFile(f *os.File, data []byte) error {
	esp, err := disk.OpenESP(f)
	if err != nil {
		return err
	}
	if err := esp.WriteFile(contract.NodeFileName, data); err != nil {
		return err
	}
	if err := esp.Close(); err != nil {
		return err
	}
	back, err := esp.ReadFile(contract.NodeFileName)
	if err != nil {
		return err
	}
	if string(back) != string(data) {
		return errors.New(contract.NodeFileName + " reads back different from what was written (the card may be faulty)")
	}
	return nil
}

// rereadPartitions asks the kernel to read the new partition table, so
// the partitions appear without replugging; a device that cannot (a loop
// device without partition scanning) is only logged.
func rereadPartitions(path string, log *slog.Logger) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKRRPART, 0); errno != 0 {
		log.Debug("the kernel did not reread the partition table", "device", path, "err", errno)
	}
}

// alignedBuf is a page-aligned buffer (the kernel moves aligned buffers
// to the device without copying them into place).
func alignedBuf(n int) []byte {
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return make([]byte, n)
	}
	return b
}

// progress logs bytes done, rate and time left, at most once per every.
type progress struct {
	log          *slog.Logger
	what         string
	total, bytes int64
	start, last  time.Time
	every        time.Duration
}

func newProgress(log *slog.Logger, what string, total int64, every time.Duration) *progress {
	now := time.Now()
	return &progress{log: log, what: what, total: total, start: now, last: now, every: every}
}

func (p *progress) add(n int64) {
	p.bytes += n
	now := time.Now()
	if now.Sub(p.last) < p.every {
		return
	}
	p.last = now
	el := now.Sub(p.start).Seconds()
	rate := float64(p.bytes) / max(el, 1e-9)
	eta := time.Duration(float64(p.total-p.bytes) / max(rate, 1) * float64(time.Second))
	p.log.Info(p.what, "done", fmt.Sprintf("%d%%", p.bytes*100/max(p.total, 1)), "bytes", humanBytes(p.bytes), "of", humanBytes(p.total), "rate", humanBytes(int64(rate))+"/s", "eta", eta.Round(time.Second))
}

func (p *progress) done() {
	el := time.Since(p.start)
	p.log.Info(p.what+" done", "bytes", humanBytes(p.bytes), "took", el.Round(time.Millisecond), "rate", humanBytes(int64(float64(p.bytes)/max(el.Seconds(), 1e-9)))+"/s")
}
