// Package update upgrades the node over the air, A/B: it resolves an
// update artifact (agent/update/artifact) in a registry, checks its
// signature, board, arch, version and size before the inactive slot is
// touched, writes the slot's boot files (the kernel, the initramfs and, on
// a Raspberry Pi, the board files: each copied from the running slot when
// the artifact's is the same), streams the slot image into its
// partition while hashing (no copy anywhere else), reads it back, arms a
// trial boot and reboots. On the trial boot it runs the health gate and
// commits the slot, or marks it bad and reboots into the old one.
//
//	u := update.New(update.Options{Release: rel, Running: slot, Config: conf.Update,
//		Registry: reg, Verify: verify, Bootloader: bl, Slots: update.Partitions{}, Health: hm})
//	u.Recover(ctx)  // at start, before Kubernetes: finish what a reboot interrupted
//	go u.Gate(ctx)  // on a trial boot: commit or roll back
//	progress, err := u.Start(ctx, api.UpgradeRequest{Ref: "registry/edge:1.3.0"})
//
// Every step is safe to lose power in: the boot loader's state (package
// agent/bootloader) decides what boots, and only ever points at a slot
// that was good or at an armed trial; the record on CAIRN-DATA
// (contract.UpdateRecord) says what was going on, for the messages and
// for resuming a download. docs/upgrades.md has the state machine.
package update

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/config"
	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/agent/health"
	"github.com/cairn-edge/cairn/agent/release"
	"github.com/cairn-edge/cairn/agent/update/artifact"
)

// Target is a resolved artifact for this node.
type Target struct {
	// Repo is the repository (registry host and path) and Digest the
	// manifest's digest; Ref is what was asked for.
	Ref, Repo, Digest string
	Update            *artifact.Update
	Config            *artifact.Config
}

// Registry is what an upgrade needs of a registry (agent/update/registry
// implements it).
type Registry interface {
	// Resolve finds ref's artifact for board and arch.
	Resolve(ctx context.Context, ref, board, arch string) (*Target, error)
	// Fetch writes blob d of repo to w from byte from on, resuming
	// dropped connections, and feeds h, which holds the hash of the
	// first from bytes, with each piece after w took it; it checks h
	// against d's digest at the end.
	// progress gets the bytes done so far.
	Fetch(ctx context.Context, repo string, d artifact.Descriptor, from int64, h hash.Hash, w io.Writer, progress func(done int64)) error
	// FetchRange writes bytes off..off+n-1 of blob d to w (a delta's
	// ranges; each chunk's hash is checked by the caller).
	FetchRange(ctx context.Context, repo string, d artifact.Descriptor, off, n int64, w io.Writer) error
	// Blob reads small blob d whole (a chunk index), checking its digest.
	Blob(ctx context.Context, repo string, d artifact.Descriptor, max int64) ([]byte, error)
	// Received is the bytes received from registries so far.
	Received() int64
}

// Verifier checks the artifact's signature: signed reports whether a
// signature was found and verified; an error is a signature that is
// present and does not verify, or a registry that could not be asked.
type Verifier func(ctx context.Context, repo, digest string) (signed bool, how string, err error)

// Slots opens the slot partitions.
type Slots interface {
	// Open opens slot's partition for reading and writing, with its size.
	Open(ctx context.Context, slot contract.Slot) (Device, int64, error)
	// Read opens slot's partition for reading only (the running slot, as
	// a delta's source), with its size.
	Read(ctx context.Context, slot contract.Slot) (ReadDevice, int64, error)
}

// ReadDevice is a slot partition open for reading.
type ReadDevice interface {
	io.ReaderAt
	Close() error
}

// Device is an open slot partition.
type Device interface {
	io.ReaderAt
	io.WriterAt
	// Sync makes what was written durable and drops it from the page
	// cache, so a read back comes from the disk.
	Sync() error
	Close() error
}

// Options configure an Updater.
type Options struct {
	// Release is the running slot's identity; Running the booted slot.
	Release release.Release
	Running contract.Slot
	// Config is the image's update section; nil refuses every upgrade.
	Config     *config.Update
	Registry   Registry
	Verify     Verifier
	Bootloader bootloader.Bootloader
	Slots      Slots
	// Health is the node's health model, which the gate asks; GateParts
	// are the parts that must be OK (default: every part but the clock).
	Health    *health.Model
	GateParts []string
	// RecordPath is the record file (default contract.UpdateRecord).
	RecordPath string
	// Reboot reboots the node the way r says; it may return before the
	// reboot happens.
	Reboot func(r bootloader.Reboot) error
	// ESP is the boot partition as the boot loader lays it out
	// (contract.Slot.BootDir): a boot file of the running slot that is
	// the artifact's own is copied from there rather than downloaded.
	// nil downloads them always. A Bootloader that reads its slots' files
	// back (bootloader.Readback: tryboot, whose running slot's files are
	// on its own boot partition) is asked instead, for the kernel, the
	// initramfs and the board files.
	ESP fs.FS
	// WatchdogReset says the hardware watchdog reset the box before this
	// boot: a rollback found now is blamed on a hang.
	WatchdogReset bool
	// Hooks run around the reboot into a trial and on a rollback (the
	// Kubernetes datastore snapshot and its restore); nil skips.
	BeforeTrial func(ctx context.Context) error
	OnRollback  func(ctx context.Context) error
	OnCommit    func(ctx context.Context) error
	// Say prints a console contract line; Log logs.
	Say func(format string, args ...any)
	Log *slog.Logger
}

// Updater runs upgrades, one at a time. Make one with New.
type Updater struct {
	o Options

	mu      sync.Mutex
	rec     *Record
	running bool
	done    int64 // bytes of the slot written or verified
	total   int64
	began   time.Time // of the current phase's byte count, for the rate
	base    int64     // done at began
	rate    float64
}

// New returns an Updater; call Recover before anything else.
func New(o Options) *Updater {
	if o.RecordPath == "" {
		o.RecordPath = contract.UpdateRecord
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Say == nil {
		o.Say = func(string, ...any) {}
	}
	return &Updater{o: o, rec: &Record{}}
}

// ErrRefused is wrapped by Start's errors for an upgrade it will not do;
// the slot was not touched.
var ErrRefused = api.ErrUpgradeRefused

func refuse(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, args...))
}

// resolveTimeout bounds finding and checking an artifact, before Start
// answers.
var resolveTimeout = 2 * time.Minute

// Start checks the artifact that req names and, if it may be installed,
// goes on in the background (Progress follows it) and returns. A refusal
// wraps ErrRefused, or api.ErrUpgradeBusy when an upgrade runs; nothing
// was written then, and the record says why.
func (u *Updater) Start(ctx context.Context, req api.UpgradeRequest) (api.Upgrade, error) {
	u.mu.Lock()
	if u.running {
		u.mu.Unlock()
		return u.Progress(), fmt.Errorf("%w (%s %s, %s): wait for it to end", api.ErrUpgradeBusy, u.rec.Ref, u.rec.Version, u.rec.Phase)
	}
	u.running = true
	u.mu.Unlock()

	t, err := u.check(ctx, req)
	if err != nil {
		u.mu.Lock()
		u.running = false
		if !errors.Is(err, errTrialPending) {
			u.rec.Phase, u.rec.Ref, u.rec.Reason, u.rec.Finished = PhaseFailed, req.Ref, err.Error(), time.Now().UTC()
			u.rec.Digest, u.rec.Version, u.rec.Slot, u.rec.Checkpoint = "", "", "", nil
			if serr := u.rec.save(u.o.RecordPath); serr != nil {
				u.o.Log.Warn("upgrade record", "err", serr)
			}
		}
		u.mu.Unlock()
		u.o.Log.Warn("upgrade refused", "ref", req.Ref, "reason", err)
		return u.Progress(), err
	}
	if err := u.begin(t); err != nil {
		u.mu.Lock()
		u.running = false
		u.mu.Unlock()
		return u.Progress(), err
	}
	go u.stage(context.WithoutCancel(ctx), t)
	return u.Progress(), nil
}

// begin records a new attempt at t, keeping what the node learned before
// (rolled-back digests, and a checkpoint of the same slot blob into the
// same slot, which a resume may use).
func (u *Updater) begin(t *Target) error {
	o := u.o
	slot := o.Running.Other()
	u.mu.Lock()
	defer u.mu.Unlock()
	prev := u.rec
	r := &Record{
		Phase: PhaseBootFiles, Ref: t.Ref, Repo: t.Repo, Digest: t.Digest, Version: t.Config.Version, Slot: slot,
		FromVersion: o.Release.Version, FromSlot: o.Running, Started: time.Now().UTC(), Rejected: prev.Rejected,
	}
	if c := prev.Checkpoint; c != nil && c.Blob == t.Update.Slot.Digest && c.Slot == slot {
		r.Checkpoint = c
	}
	u.rec = r
	return r.save(o.RecordPath)
}

var errTrialPending = errors.New("a trial boot is pending")

// check resolves req and decides whether it may be installed: everything
// that can refuse it happens here, before the inactive slot is touched.
func (u *Updater) check(ctx context.Context, req api.UpgradeRequest) (*Target, error) {
	o := u.o
	if o.Config == nil || o.Registry == nil {
		return nil, refuse("this image has no update section (add update: with repository and keys to the spec)")
	}
	if req.Ref == "" {
		return nil, refuse("no reference given (cairn node upgrade REGISTRY/REPO:TAG)")
	}
	if trial, err := o.Bootloader.Trial(o.Running); err != nil {
		return nil, refuse("reading the boot loader's state: %v", err)
	} else if trial {
		return nil, fmt.Errorf("%w: %w: this boot of slot %s is a trial still waiting for its health gate; upgrade after it commits or rolls back", ErrRefused, errTrialPending, o.Running)
	}
	if def, err := o.Bootloader.Default(); err != nil {
		return nil, refuse("reading the boot loader's default: %v", err)
	} else if def != o.Running {
		return nil, refuse("slot %s is the boot default but slot %s is running; reboot first", def, o.Running)
	}
	ref := qualify(req.Ref, o.Config.Repository)
	rctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	t, err := o.Registry.Resolve(rctx, ref, o.Release.Board, o.Release.Arch)
	if err != nil {
		return nil, refuse("%v", err)
	}
	t.Ref = ref
	signed, how, err := o.Verify(rctx, t.Repo, t.Digest)
	switch {
	case err != nil:
		return nil, refuse("signature of %s: %v", t.Digest, err)
	case !signed && !o.Config.AllowUnsigned:
		return nil, refuse("%s (%s) is not signed, and this image requires signatures (sign it: cairn push --key, or cosign sign --key)", ref, t.Digest)
	case !signed:
		o.Log.Warn("installing an unsigned artifact: the image allows it", "ref", ref, "digest", t.Digest)
	default:
		o.Log.Info("signature verified", "digest", t.Digest, "by", how)
	}
	if err := t.Config.Check(o.Release.Board, o.Release.Arch); err != nil {
		return nil, refuse("%v", err)
	}
	if t.Config.Name != o.Release.Name && !req.Force {
		return nil, refuse("%s is image %s, this node runs %s (pass --force to switch images)", ref, t.Config.Name, o.Release.Name)
	}
	if c := compareVersions(t.Config.Version, o.Release.Version); c <= 0 && !req.Force {
		what := "older than"
		if c == 0 {
			what = "the same as"
		}
		return nil, refuse("%s is version %s, %s the running %s (pass --force to downgrade or reinstall)", ref, t.Config.Version, what, o.Release.Version)
	}
	if u.rec.rejected(t.Digest) && !req.Force {
		return nil, refuse("%s (%s) rolled back on this node before (pass --force to try it again)", ref, t.Digest)
	}
	dev, size, err := o.Slots.Open(ctx, o.Running.Other())
	if err != nil {
		return nil, refuse("slot %s: %v", o.Running.Other(), err)
	}
	dev.Close()
	if t.Update.Slot.Size > size {
		return nil, refuse("the slot image of %s is %d MiB, larger than slot %s's partition (%d MiB); build it with a smaller image or a larger disk.slotSize on a new install", ref, t.Update.Slot.Size>>20, o.Running.Other(), size>>20)
	}
	return t, nil
}

// Progress is the current or last attempt.
func (u *Updater) Progress() api.Upgrade {
	u.mu.Lock()
	defer u.mu.Unlock()
	r := u.rec
	p := api.Upgrade{
		Phase: string(r.Phase), Running: u.running, Ref: r.Ref, Digest: r.Digest, Version: r.Version,
		Slot: string(r.Slot), FromVersion: r.FromVersion, FromSlot: string(r.FromSlot), Reason: r.Reason,
		Started: r.Started, Finished: r.Finished, DoneBytes: u.done, TotalBytes: u.total, RateBytes: u.rate,
	}
	if u.o.Registry != nil {
		p.FetchedBytes = u.o.Registry.Received()
	}
	if u.rate > 0 && u.total > u.done {
		p.ETASeconds = float64(u.total-u.done) / u.rate
	}
	return p
}

// setPhase records phase durably; the caller holds no lock.
func (u *Updater) setPhase(p Phase, reason string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.rec.Phase, u.rec.Reason = p, reason
	if p.Ended() || p == PhaseGateFailed {
		u.rec.Finished = time.Now().UTC()
	}
	u.done, u.total, u.rate, u.began = 0, 0, 0, time.Time{}
	return u.rec.save(u.o.RecordPath)
}

// progress updates the byte counts of the phase running.
func (u *Updater) progress(done, total int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.began.IsZero() || done < u.done || total != u.total {
		u.began, u.base = time.Now(), done // a new phase, or a resume
	}
	u.done, u.total = done, total
	if el := time.Since(u.began).Seconds(); el > 0.5 {
		u.rate = float64(done-u.base) / el
	}
}
