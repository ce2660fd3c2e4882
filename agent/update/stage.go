package update

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/agent/update/artifact"
)

// checkpointEvery is how many slot bytes go between checkpoints: a cut
// loses at most this much download.
var checkpointEvery int64 = 8 << 20

// stage installs t into the inactive slot and reboots into a trial. It
// runs in the background after Start; a failure ends the attempt with the
// running slot still the default.
func (u *Updater) stage(ctx context.Context, t *Target) {
	err := u.install(ctx, t)
	if err == nil {
		return // rebooting
	}
	u.o.Log.Error("upgrade failed", "ref", t.Ref, "err", err)
	u.o.Say("upgrade failed version=%s reason=%s", t.Config.Version, oneLine(err.Error()))
	if serr := u.setPhase(PhaseFailed, err.Error()); serr != nil {
		u.o.Log.Warn("upgrade record", "err", serr)
	}
	u.mu.Lock()
	u.running = false
	u.mu.Unlock()
}

func (u *Updater) install(ctx context.Context, t *Target) error {
	o := u.o
	slot := o.Running.Other()
	o.Say("upgrade started version=%s slot=%s digest=%s", t.Config.Version, slot, t.Digest)

	// Boot files first: installing them is what makes the slot unbootable
	// before its partition is overwritten. The board files (a Raspberry
	// Pi's) are in hand before: a failed download leaves the slot alone.
	board, err := u.boardFiles(ctx, t)
	if err != nil {
		return fmt.Errorf("slot %s's board files: %w", slot, err)
	}
	files := bootloader.BootFiles{
		Kernel:  u.bootBlob(ctx, t.Repo, t.Update.Kernel, "kernel", u.fromRunning(contract.KernelFile, bootloader.Readback.OpenKernel)),
		Initrd:  u.bootBlob(ctx, t.Repo, t.Update.Initrd, "initramfs", u.fromRunning(contract.InitrdFile, bootloader.Readback.OpenInitrd)),
		Cmdline: t.Config.Cmdline,
		Title:   fmt.Sprintf("%s %s (slot %s)", t.Config.Name, t.Config.Version, strings.ToUpper(string(slot))),
		Version: t.Config.Version,
		Files:   board,
	}
	if err := o.Bootloader.Install(slot, files); err != nil {
		return fmt.Errorf("installing slot %s's boot files: %w", slot, err)
	}

	if err := u.setPhase(PhaseDownloading, ""); err != nil {
		return err
	}
	dev, size, err := o.Slots.Open(ctx, slot)
	if err != nil {
		return err
	}
	defer dev.Close()
	if t.Update.Slot.Size > size {
		return fmt.Errorf("slot image is %d bytes, the partition %d", t.Update.Slot.Size, size)
	}
	if err := u.download(ctx, t, dev); err != nil {
		return err
	}

	if err := u.setPhase(PhaseVerifying, ""); err != nil {
		return err
	}
	if err := u.verifySlot(dev, t.Update.Slot); err != nil {
		return err
	}

	if o.BeforeTrial != nil {
		if err := o.BeforeTrial(ctx); err != nil {
			return fmt.Errorf("before the trial boot: %w", err)
		}
	}
	reboot, err := o.Bootloader.ArmTrial(slot)
	if err != nil {
		return fmt.Errorf("arming the trial boot of slot %s: %w", slot, err)
	}
	// Recorded after arming: a record that says armed means the trial was.
	u.mu.Lock()
	u.rec.Checkpoint = nil
	u.mu.Unlock()
	if err := u.setPhase(PhaseArmed, ""); err != nil {
		return err
	}
	o.Say("upgrade armed slot=%s version=%s fetched=%d; rebooting into the trial", slot, t.Config.Version, o.Registry.Received())
	return o.Reboot(reboot)
}

// bootBlob is a reader of a boot file (a kernel, an initramfs), opened
// when first read: the running slot's copy of the same file (running
// opens it) when its digest is d's (a release that changed only its slot
// downloads no boot files), else d streamed from the registry, where a
// digest mismatch is a read error, so the boot loader never renames a
// damaged file into place.
func (u *Updater) bootBlob(ctx context.Context, repo string, d artifact.Descriptor, what string, running opener) io.Reader {
	return &lazyBlob{open: func() io.Reader {
		if r := u.localBoot(d, what, running); r != nil {
			return r
		}
		pr, pw := io.Pipe()
		go func() {
			pw.CloseWithError(u.o.Registry.Fetch(ctx, repo, d, 0, sha256.New(), pw, nil))
		}()
		return pr
	}}
}

// opener opens the running slot's copy of a boot file.
type opener func() (io.ReadCloser, error)

// fromRunning opens the running slot's copy of a boot file: read back
// through the boot loader when it can (tryboot: the slot's boot
// partition), else espFile in the slot's directory on the ESP
// (systemd-boot: contract.Slot.BootDir); with neither, there is none.
func (u *Updater) fromRunning(espFile string, readback func(bootloader.Readback, contract.Slot) (io.ReadCloser, error)) opener {
	return func() (io.ReadCloser, error) {
		if rb, ok := u.o.Bootloader.(bootloader.Readback); ok {
			return readback(rb, u.o.Running)
		}
		if u.o.ESP == nil || espFile == "" {
			return nil, fs.ErrNotExist
		}
		return u.o.ESP.Open(path.Join(u.o.Running.BootDir(), espFile))
	}
}

// localBoot opens the running slot's boot file if it holds d's bytes,
// hashing it first as a stream (an arm64 kernel is 30 MiB: no copy in
// memory); nil if it does not.
func (u *Updater) localBoot(d artifact.Descriptor, what string, open opener) io.Reader {
	f, err := open()
	if err != nil {
		return nil
	}
	n, digest, err := sha256Of(f, d.Size)
	f.Close()
	if err != nil || n != d.Size || digest != d.Digest {
		return nil
	}
	if f, err = open(); err != nil {
		return nil
	}
	u.o.Log.Info("boot file unchanged: copied from the running slot", "file", what, "bytes", n)
	return f
}

// sha256Of hashes what r holds, reading at most max+1 bytes (one more
// than a file of max bytes has, so a longer one shows).
func sha256Of(r io.Reader, max int64) (int64, string, error) {
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(r, max+1))
	return n, "sha256:" + hex.EncodeToString(h.Sum(nil)), err
}

// boardFiles are the artifact's board files for Install (none on a UEFI
// board): each copied from the running slot when it holds the file the
// config lists (a release with the same firmware and device trees
// downloads none of them), the others from the board files layer,
// downloaded once into memory (at most artifact.MaxBootFilesLayer bytes),
// digest-checked and read against the config's listing.
func (u *Updater) boardFiles(ctx context.Context, t *Target) ([]bootloader.File, error) {
	list := t.Config.BootFiles
	if len(list) == 0 {
		return nil, nil
	}
	out := make([]bootloader.File, len(list))
	var missing []string
	for i, bf := range list {
		out[i].Name = bf.Name
		if b, ok := u.localBoardFile(bf); ok {
			out[i].Data = bytes.NewReader(b)
		} else {
			missing = append(missing, bf.Name)
		}
	}
	if len(missing) == 0 {
		u.o.Log.Info("board files unchanged: copied from the running slot", "files", len(list))
		return out, nil
	}
	if err := artifact.Match(t.Update, t.Config); err != nil {
		return nil, err
	}
	d := t.Update.BootFiles
	if d.Size > artifact.MaxBootFilesLayer {
		return nil, fmt.Errorf("the board files layer is %d bytes, more than the %d allowed", d.Size, artifact.MaxBootFilesLayer)
	}
	var layer bytes.Buffer
	if err := u.o.Registry.Fetch(ctx, t.Repo, *d, 0, sha256.New(), &layer, nil); err != nil {
		return nil, fmt.Errorf("downloading the board files layer: %w", err)
	}
	data, err := artifact.ReadBootFiles(&layer, list)
	if err != nil {
		return nil, err
	}
	for i := range out {
		if out[i].Data == nil {
			out[i].Data = bytes.NewReader(data[i])
		}
	}
	u.o.Log.Info("board files downloaded", "changed", len(missing), "of", len(list), "layer_bytes", d.Size, "first", missing[0])
	return out, nil
}

// localBoardFile is the running slot's copy of board file bf, if it
// holds bf's bytes.
func (u *Updater) localBoardFile(bf artifact.BootFile) ([]byte, bool) {
	rb, ok := u.o.Bootloader.(bootloader.Readback)
	if !ok {
		return nil, false
	}
	f, err := rb.OpenFile(u.o.Running, bf.Name)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, bf.Size+1))
	if err != nil || int64(len(b)) != bf.Size {
		return nil, false
	}
	if sum := sha256.Sum256(b); "sha256:"+hex.EncodeToString(sum[:]) != bf.Digest {
		return nil, false
	}
	return b, true
}

type lazyBlob struct {
	open func() io.Reader
	r    io.Reader
}

func (l *lazyBlob) Read(p []byte) (int, error) {
	if l.r == nil {
		l.r = l.open()
	}
	n, err := l.r.Read(p)
	if c, ok := l.r.(io.Closer); ok && err != nil {
		c.Close()
	}
	return n, err
}

// download streams the slot blob into dev, resuming from the record's
// checkpoint when the bytes on the partition still hash to it, and saves
// a checkpoint every checkpointEvery bytes.
func (u *Updater) download(ctx context.Context, t *Target, dev Device) error {
	if t.Update.Chunks != nil {
		err := u.downloadDelta(ctx, t, dev)
		if err == nil {
			return dev.Sync()
		}
		if !errors.Is(err, errNoDelta) {
			return err
		}
		u.o.Log.Warn("downloading the whole slot image", "why", err)
	}
	d := t.Update.Slot
	from, h := u.resumePoint(dev, d)
	w := &slotWriter{u: u, dev: dev, off: from, h: h, blob: d.Digest, next: from + checkpointEvery}
	u.progress(from, d.Size)
	if from > 0 {
		u.o.Log.Info("resuming the slot download", "from", from, "of", d.Size)
		u.o.Say("upgrade resuming download at %d of %d bytes", from, d.Size)
	}
	err := u.o.Registry.Fetch(ctx, t.Repo, d, from, h, w, func(done int64) { u.progress(done, d.Size) })
	if err != nil {
		return fmt.Errorf("downloading the slot image: %w", err)
	}
	return dev.Sync()
}

// resumePoint is where a download into dev may go on: the checkpoint's
// offset if re-hashing that much of the partition gives the checkpoint's
// hash state, else 0 with a fresh hash.
func (u *Updater) resumePoint(dev Device, d artifact.Descriptor) (int64, hash.Hash) {
	c := u.rec.Checkpoint
	if c == nil || c.Blob != d.Digest || c.Written <= 0 || c.Written > d.Size {
		return 0, sha256.New()
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(dev, 0, c.Written)); err != nil {
		u.o.Log.Warn("cannot re-read the checkpoint; starting over", "err", err)
		return 0, sha256.New()
	}
	if !bytes.Equal(hashState(h), c.Hash) {
		u.o.Log.Warn("the partition does not hold what the checkpoint says; starting over", "written", c.Written)
		return 0, sha256.New()
	}
	return c.Written, h
}

// slotWriter writes the slot blob to its partition in order and
// checkpoints as it goes.
type slotWriter struct {
	u         *Updater
	dev       Device
	h         hash.Hash // the hash the fetch feeds: read for checkpoints
	blob      string
	off, next int64
}

func (w *slotWriter) Write(p []byte) (int, error) {
	// The fetch feeds the hash after each write returns, so here, before
	// p, the hash covers exactly w.off bytes: the moment to checkpoint.
	if w.off >= w.next {
		w.next = w.off + checkpointEvery
		if err := w.checkpoint(); err != nil {
			return 0, err
		}
	}
	n, err := w.dev.WriteAt(p, w.off)
	w.off += int64(n)
	if err != nil {
		return n, fmt.Errorf("writing the slot partition at %d: %w", w.off, err)
	}
	return n, nil
}

// checkpoint makes the bytes so far durable, then records them.
func (w *slotWriter) checkpoint() error {
	if err := w.dev.Sync(); err != nil {
		return fmt.Errorf("syncing the slot partition: %w", err)
	}
	u := w.u
	u.mu.Lock()
	u.rec.Checkpoint = &Checkpoint{Blob: w.blob, Slot: u.rec.Slot, Written: w.off, Hash: hashState(w.h)}
	err := u.rec.save(u.o.RecordPath)
	u.mu.Unlock()
	return err
}

// verifySlot reads the slot image back from the partition and checks its
// digest: what boots is what was signed.
func (u *Updater) verifySlot(dev Device, d artifact.Descriptor) error {
	h := sha256.New()
	pr := &progressReader{r: io.NewSectionReader(dev, 0, d.Size), fn: func(n int64) { u.progress(n, d.Size) }}
	if _, err := io.Copy(h, pr); err != nil {
		return fmt.Errorf("reading the slot partition back: %w", err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != d.Digest {
		return fmt.Errorf("the slot partition reads back as %s, not the downloaded %s (a failing disk?); the old slot stays the default", got, d.Digest)
	}
	return nil
}

type progressReader struct {
	r  io.Reader
	n  int64
	fn func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	p.fn(p.n)
	return n, err
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
