package update

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/cairn-edge/cairn/agent/update/chunk"
	"github.com/cairn-edge/cairn/agent/update/registry"
)

// maxChunkIndex bounds a chunk index blob (a 1 GiB slot in 16 KiB chunks
// is about 6 MiB of index).
const maxChunkIndex = 16 << 20

// deltaSyncEvery bounds the time between syncs of a delta being written:
// on a slow link, what arrived survives a cut.
var deltaSyncEvery = 2 * time.Second

// errNoDelta wraps the reasons a delta cannot be tried; the whole slot
// image is downloaded instead.
var errNoDelta = errors.New("no delta")

// downloadDelta assembles the slot image in dev from the chunks the
// running slot already holds and ranges of the slot blob for the others,
// checking every chunk's hash. Chunks already in dev from an interrupted
// attempt are verified and kept. It fails with errNoDelta when a delta is
// not possible (no usable index, an unreadable running slot, a registry
// without Range), before anything is written, or, for a registry without
// Range, at its first range.
func (u *Updater) downloadDelta(ctx context.Context, t *Target, dev Device) error {
	o := u.o
	raw, err := o.Registry.Blob(ctx, t.Repo, *t.Update.Chunks, maxChunkIndex)
	if err != nil {
		return fmt.Errorf("%w: reading the chunk index: %w", errNoDelta, err)
	}
	want, err := chunk.Parse(raw, t.Update.Slot.Size)
	if err != nil {
		return fmt.Errorf("%w: %w", errNoDelta, err)
	}
	if want.Size != t.Update.Slot.Size {
		return fmt.Errorf("%w: the chunk index covers %d bytes, the slot image is %d", errNoDelta, want.Size, t.Update.Slot.Size)
	}
	src, size, err := o.Slots.Read(ctx, o.Running)
	if err != nil {
		return fmt.Errorf("%w: %w", errNoDelta, err)
	}
	defer src.Close()
	used, err := squashfsSize(src, size)
	if err != nil {
		return fmt.Errorf("%w: running slot %s: %w", errNoDelta, o.Running, err)
	}
	d, err := chunk.Plan(want, io.NewSectionReader(src, 0, used), nil)
	if err != nil {
		return fmt.Errorf("%w: %w", errNoDelta, err)
	}
	from, err := want.VerifyPrefix(dev)
	if err != nil {
		return err
	}
	o.Log.Info("delta planned", "local", d.LocalBytes, "fetch", d.FetchBytes, "ranges", len(d.Ranges), "resume_at", from)
	o.Say("upgrade delta local=%d fetch=%d ranges=%d resume=%d", d.LocalBytes, d.FetchBytes, len(d.Ranges), from)
	fetch := func(ctx context.Context, r chunk.Range, w io.Writer) error {
		return o.Registry.FetchRange(ctx, t.Repo, t.Update.Slot, r.Offset, r.Length, w)
	}
	u.progress(from, want.Size)
	// Synced every checkpointEvery bytes or deltaSyncEvery, so a cut
	// keeps what came before (VerifyPrefix finds it on the next attempt).
	next, synced, syncErr := from+checkpointEvery, time.Now(), error(nil)
	progress := func(local, fetched int64) {
		done := from + local + fetched
		u.progress(done, want.Size)
		if (done >= next || time.Since(synced) >= deltaSyncEvery) && syncErr == nil {
			next, synced, syncErr = done+checkpointEvery, time.Now(), dev.Sync()
		}
	}
	st, err := d.Apply(ctx, io.NewOffsetWriter(dev, from), fetch, chunk.ApplyOptions{From: from, Progress: progress})
	if err == nil && syncErr != nil {
		err = fmt.Errorf("syncing the slot partition: %w", syncErr)
	}
	if errors.Is(err, registry.ErrRangeUnsupported) {
		return fmt.Errorf("%w: %w", errNoDelta, err)
	}
	if err != nil {
		return fmt.Errorf("assembling the slot image: %w", err)
	}
	o.Log.Info("delta applied", "local", st.Local, "fetched", st.Fetched, "refetched", st.Refetched)
	return nil
}

// squashfsSize is the bytes a squashfs image at the start of r uses
// (its superblock's bytes_used, rounded up to 4 KiB as the builder pads
// it), at most size.
func squashfsSize(r io.ReaderAt, size int64) (int64, error) {
	sb := make([]byte, 48)
	if _, err := r.ReadAt(sb, 0); err != nil {
		return 0, fmt.Errorf("reading its superblock: %w", err)
	}
	if string(sb[:4]) != "hsqs" {
		return 0, errors.New("it holds no squashfs image")
	}
	used := int64(binary.LittleEndian.Uint64(sb[40:48]))
	used = (used + 4095) &^ 4095
	if used <= 0 || used > size {
		return 0, fmt.Errorf("its squashfs says it uses %d bytes of a %d-byte partition", used, size)
	}
	return used, nil
}
