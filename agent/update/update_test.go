package update

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/bootloader/sdboot"
	"github.com/cairn-edge/cairn/agent/config"
	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/agent/health"
	"github.com/cairn-edge/cairn/agent/release"
	"github.com/cairn-edge/cairn/agent/update/artifact"
	"github.com/cairn-edge/cairn/agent/update/chunk"
)

// fakeRegistry serves one artifact from memory.
type fakeRegistry struct {
	mu         sync.Mutex
	blobs      map[string][]byte
	target     Target
	resolveErr error
	// cutAfter makes the next slot fetch fail after that many bytes.
	cutAfter int64
	froms    []int64
	ranges   int
	received int64
	// fetched counts whole fetches by media type.
	fetched map[string]int
}

func (f *fakeRegistry) Resolve(ctx context.Context, ref, board, arch string) (*Target, error) {
	if f.resolveErr != nil {
		return nil, f.resolveErr
	}
	t := f.target
	return &t, nil
}

func (f *fakeRegistry) Fetch(ctx context.Context, repo string, d artifact.Descriptor, from int64, h hash.Hash, w io.Writer, progress func(int64)) error {
	f.mu.Lock()
	b, ok := f.blobs[d.Digest]
	cut := f.cutAfter
	if d.MediaType == artifact.SlotMediaType {
		f.froms = append(f.froms, from)
		f.cutAfter = 0
	} else {
		cut = 0
	}
	if f.fetched == nil {
		f.fetched = map[string]int{}
	}
	f.fetched[d.MediaType]++
	f.mu.Unlock()
	if !ok {
		return fmt.Errorf("blob %s not found", d.Digest)
	}
	rest := b[from:]
	if cut > 0 {
		rest = rest[:cut]
	}
	// As registry.Client does: write, then hash what was written.
	for b := rest; len(b) > 0; {
		n := min(len(b), 64<<10)
		if _, err := w.Write(b[:n]); err != nil {
			return err
		}
		h.Write(b[:n])
		b = b[n:]
	}
	f.mu.Lock()
	f.received += int64(len(rest))
	f.mu.Unlock()
	if progress != nil {
		progress(from + int64(len(rest)))
	}
	if cut > 0 {
		return errors.New("connection reset by peer")
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != d.Digest {
		return fmt.Errorf("blob %s arrived as %s", d.Digest, got)
	}
	return nil
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func (f *fakeRegistry) FetchRange(ctx context.Context, repo string, d artifact.Descriptor, off, n int64, w io.Writer) error {
	f.mu.Lock()
	b, ok := f.blobs[d.Digest]
	f.ranges++
	f.mu.Unlock()
	if !ok || off+n > int64(len(b)) {
		return fmt.Errorf("blob %s: no bytes %d+%d", d.Digest, off, n)
	}
	f.mu.Lock()
	f.received += n
	f.mu.Unlock()
	_, err := w.Write(b[off : off+n])
	return err
}

func (f *fakeRegistry) Blob(ctx context.Context, repo string, d artifact.Descriptor, max int64) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.blobs[d.Digest]
	if !ok {
		return nil, fmt.Errorf("blob %s not found", d.Digest)
	}
	f.received += int64(len(b))
	return b, nil
}

func (f *fakeRegistry) Received() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.received
}

// memDevice is a slot partition in memory.
type memDevice struct {
	mu sync.Mutex
	b  []byte
}

func (d *memDevice) ReadAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off >= int64(len(d.b)) {
		return 0, io.EOF
	}
	n := copy(p, d.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (d *memDevice) WriteAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off+int64(len(p)) > int64(len(d.b)) {
		return 0, errors.New("no space left on device")
	}
	return copy(d.b[off:], p), nil
}

func (d *memDevice) Sync() error  { return nil }
func (d *memDevice) Close() error { return nil }

func (d *memDevice) snapshot() []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return bytes.Clone(d.b)
}

type memSlots map[contract.Slot]*memDevice

func (m memSlots) Open(ctx context.Context, s contract.Slot) (Device, int64, error) {
	return m[s], int64(len(m[s].b)), nil
}

func (m memSlots) Read(ctx context.Context, s contract.Slot) (ReadDevice, int64, error) {
	return m[s], int64(len(m[s].b)), nil
}

// node is one simulated box: an ESP, two slot partitions, CAIRN-DATA.
type node struct {
	t       *testing.T
	esp     *bootloader.MemFS
	slots   memSlots
	record  string
	reg     *fakeRegistry
	reboots chan bootloader.Reboot
}

const slotSize = 4 << 20

func newNode(t *testing.T) *node {
	n := &node{t: t, esp: &bootloader.MemFS{}, slots: memSlots{contract.SlotA: {b: make([]byte, slotSize)}, contract.SlotB: {b: make([]byte, slotSize)}},
		record: filepath.Join(t.TempDir(), "record.json"), reboots: make(chan bootloader.Reboot, 4)}
	bl := sdboot.New(n.esp, nil)
	if err := bl.Install(contract.SlotA, bootloader.BootFiles{Kernel: strings.NewReader("k1"), Initrd: strings.NewReader("i1"), Version: "1.0.0"}); err != nil {
		t.Fatal(err)
	}
	if err := bl.Commit(contract.SlotA); err != nil {
		t.Fatal(err)
	}
	n.reg = n.artifact("1.1.0", 3<<20+12345)
	return n
}

// artifact is a registry holding version of a random slot image of size
// bytes, without a chunk index.
func (n *node) artifact(version string, size int) *fakeRegistry {
	slot := make([]byte, size)
	rng := rand.New(rand.NewPCG(uint64(size), 7))
	for i := range slot {
		slot[i] = byte(rng.Uint32())
	}
	return artifactOf(version, slot, false)
}

// artifactOf is a registry holding version with slot image slot, and its
// chunk index if chunks.
func artifactOf(version string, slot []byte, chunks bool) *fakeRegistry {
	kernel, initrd := []byte("kernel "+version), []byte("initrd "+version)
	cfg := &artifact.Config{Name: "edge", Version: version, Board: "qemu-x86_64", Arch: "amd64", Cmdline: []string{"console=ttyS0"}}
	u := &artifact.Update{
		Slot:   artifact.Descriptor{MediaType: artifact.SlotMediaType, Digest: digestOf(slot), Size: int64(len(slot))},
		Kernel: artifact.Descriptor{MediaType: artifact.KernelMediaType, Digest: digestOf(kernel), Size: int64(len(kernel))},
		Initrd: artifact.Descriptor{MediaType: artifact.InitrdMediaType, Digest: digestOf(initrd), Size: int64(len(initrd))},
	}
	blobs := map[string][]byte{u.Slot.Digest: slot, u.Kernel.Digest: kernel, u.Initrd.Digest: initrd}
	if chunks {
		ix, err := chunk.Build(bytes.NewReader(slot))
		if err != nil {
			panic(err)
		}
		b, _ := ix.Marshal()
		u.Chunks = &artifact.Descriptor{MediaType: artifact.ChunksMediaType, Digest: digestOf(b), Size: int64(len(b))}
		blobs[u.Chunks.Digest] = b
	}
	mb, _ := json.Marshal(u)
	return &fakeRegistry{blobs: blobs, target: Target{Repo: "reg.test/edge", Digest: digestOf(mb), Update: u, Config: cfg}}
}

type bootOpts struct {
	slot    contract.Slot
	version string
	conf    *config.Update
	verify  Verifier
	health  *health.Model
}

// boot starts an agent's Updater on the node, running slot with version.
func (n *node) boot(o bootOpts) *Updater {
	if o.conf == nil {
		o.conf = &config.Update{Repository: "reg.test/edge", AllowUnsigned: true, GateTimeout: 200 * time.Millisecond}
	}
	if o.verify == nil {
		o.verify = func(context.Context, string, string) (bool, string, error) { return true, "key test", nil }
	}
	if o.health == nil {
		o.health = health.New()
		o.health.Part("services").Set(health.OK, "all running")
	}
	return New(Options{
		Release:    release.Release{Name: "edge", Version: o.version, Board: "qemu-x86_64", Arch: "amd64"},
		Running:    o.slot,
		Config:     o.conf,
		Registry:   n.reg,
		Verify:     o.verify,
		Bootloader: sdboot.New(n.esp, nil),
		Slots:      n.slots,
		Health:     o.health,
		RecordPath: n.record,
		Reboot:     func(r bootloader.Reboot) error { n.reboots <- r; return nil },
		Log:        slog.New(slog.DiscardHandler),
	})
}

// firmware is systemd-boot's part of a boot: it takes a try from a
// counting entry (renames +1 to +0-1) and returns the slot it boots.
func (n *node) firmware() contract.Slot {
	n.t.Helper()
	names, _ := n.esp.ReadDir(contract.ESPEntriesDir)
	for _, name := range names {
		if strings.Contains(name, "+1.conf") {
			b, _ := n.esp.ReadFile(contract.ESPEntriesDir + "/" + name)
			n.esp.Remove(contract.ESPEntriesDir + "/" + name)
			n.esp.WriteFile(contract.ESPEntriesDir+"/"+strings.Replace(name, "+1.conf", "+0-1.conf", 1), bytes.NewReader(b))
		}
	}
	s, err := sdboot.New(n.esp, nil).Default()
	if err != nil {
		n.t.Fatal(err)
	}
	// A spent trial sorts last: the default is then the committed slot.
	for _, name := range names {
		if strings.Contains(name, "+1.conf") {
			slot := contract.Slot(name[len(name)-len("b+1.conf")])
			return slot
		}
	}
	return s
}

func (n *node) waitReboot() {
	n.t.Helper()
	select {
	case <-n.reboots:
	case <-time.After(10 * time.Second):
		n.t.Fatal("no reboot")
	}
}

func TestUpgradeCommits(t *testing.T) {
	n := newNode(t)
	u := n.boot(bootOpts{slot: contract.SlotA, version: "1.0.0"})
	if trial, err := u.Recover(context.Background()); err != nil || trial {
		t.Fatalf("Recover on a fresh node = %v, %v", trial, err)
	}
	if _, err := u.Start(context.Background(), api.UpgradeRequest{Ref: "1.1.0"}); err != nil {
		t.Fatal(err)
	}
	n.waitReboot()
	if p := u.Progress(); p.Phase != string(PhaseArmed) || p.Slot != "b" {
		t.Fatalf("progress = %+v, want armed for slot b", p)
	}
	slot := n.reg.blobs[n.reg.target.Update.Slot.Digest]
	if got := n.slots[contract.SlotB].snapshot()[:len(slot)]; !bytes.Equal(got, slot) {
		t.Fatal("slot b does not hold the artifact's slot image")
	}

	if s := n.firmware(); s != contract.SlotB {
		t.Fatalf("the firmware boots %s after arming, want b", s)
	}
	u = n.boot(bootOpts{slot: contract.SlotB, version: "1.1.0"})
	if trial, err := u.Recover(context.Background()); err != nil || !trial {
		t.Fatalf("Recover on the trial boot = %v, %v", trial, err)
	}
	if err := u.Gate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p := u.Progress(); p.Phase != string(PhaseCommitted) || p.Version != "1.1.0" || p.FromVersion != "1.0.0" {
		t.Fatalf("progress = %+v, want committed 1.1.0 from 1.0.0", p)
	}
	if s := n.firmware(); s != contract.SlotB {
		t.Fatalf("the firmware boots %s after the commit, want b", s)
	}
}

func TestGateFailureRollsBack(t *testing.T) {
	n := newNode(t)
	u := n.boot(bootOpts{slot: contract.SlotA, version: "1.0.0"})
	u.Recover(context.Background())
	if _, err := u.Start(context.Background(), api.UpgradeRequest{Ref: "1.1.0"}); err != nil {
		t.Fatal(err)
	}
	n.waitReboot()
	n.firmware()

	sick := health.New()
	sick.Part("services").Set(health.Failed, "hello exited with status 3")
	u = n.boot(bootOpts{slot: contract.SlotB, version: "1.1.0", health: sick})
	if trial, _ := u.Recover(context.Background()); !trial {
		t.Fatal("not a trial")
	}
	if err := u.Gate(context.Background()); err == nil || !strings.Contains(err.Error(), "hello exited") {
		t.Fatalf("Gate = %v, want the failing service named", err)
	}
	n.waitReboot()

	if s := n.firmware(); s != contract.SlotA {
		t.Fatalf("after a failed gate the firmware boots %s, want a", s)
	}
	u = n.boot(bootOpts{slot: contract.SlotA, version: "1.0.0"})
	u.Recover(context.Background())
	p := u.Progress()
	if p.Phase != string(PhaseRolledBack) || !strings.Contains(p.Reason, "health gate failed") {
		t.Fatalf("progress = %+v, want rolled back with the gate's reason", p)
	}
	// The rolled-back digest is not tried again unless forced.
	if _, err := u.Start(context.Background(), api.UpgradeRequest{Ref: "1.1.0"}); err == nil || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("retry of a rolled-back digest = %v, want a refusal", err)
	}
	if _, err := u.Start(context.Background(), api.UpgradeRequest{Ref: "1.1.0", Force: true}); err != nil {
		t.Fatalf("forced retry: %v", err)
	}
	n.waitReboot()
}

func TestTrialThatNeverReportsRollsBack(t *testing.T) {
	// A panic, a hang or a power cut during the trial: the agent on the
	// trial slot never decides; the firmware boots the old slot.
	n := newNode(t)
	u := n.boot(bootOpts{slot: contract.SlotA, version: "1.0.0"})
	u.Recover(context.Background())
	u.Start(context.Background(), api.UpgradeRequest{Ref: "1.1.0"})
	n.waitReboot()
	if s := n.firmware(); s != contract.SlotB {
		t.Fatalf("trial boots %s", s)
	}
	// Quick power cycles: each boot after the spent try is slot a.
	for i := 0; i < 3; i++ {
		if s := n.firmware(); s != contract.SlotA {
			t.Fatalf("boot %d after a spent trial is %s, want a", i, s)
		}
	}
	u = n.boot(bootOpts{slot: contract.SlotA, version: "1.0.0"})
	if trial, err := u.Recover(context.Background()); trial || err != nil {
		t.Fatalf("Recover = %v, %v", trial, err)
	}
	if p := u.Progress(); p.Phase != string(PhaseRolledBack) || !strings.Contains(p.Reason, "did not reach a health verdict") {
		t.Fatalf("progress = %+v", p)
	}
	// An upgrade after a rollback works (another release).
	n.reg = n.artifact("1.2.0", 1<<20)
	u = n.boot(bootOpts{slot: contract.SlotA, version: "1.0.0"})
	u.Recover(context.Background())
	if _, err := u.Start(context.Background(), api.UpgradeRequest{Ref: "1.2.0"}); err != nil {
		t.Fatal(err)
	}
	n.waitReboot()
}

func TestRefusedBeforeTheSlotIsTouched(t *testing.T) {
	badSig := func(context.Context, string, string) (bool, string, error) {
		return false, "", errors.New("signature does not verify with any key")
	}
	unsigned := func(context.Context, string, string) (bool, string, error) { return false, "", nil }
	signed := &config.Update{Repository: "reg.test/edge", Keys: []string{"k"}}
	for _, tc := range []struct {
		name   string
		conf   *config.Update
		verify Verifier
		change func(n *node)
		req    api.UpgradeRequest
		want   string
	}{
		{"wrong signature", nil, badSig, nil, api.UpgradeRequest{Ref: "1.1.0"}, "does not verify"},
		{"unsigned", signed, unsigned, nil, api.UpgradeRequest{Ref: "1.1.0"}, "not signed"},
		{"other board", nil, nil, func(n *node) { n.reg.target.Config.Board = "rpi4" }, api.UpgradeRequest{Ref: "1.1.0"}, "board rpi4"},
		{"other arch", nil, nil, func(n *node) { n.reg.target.Config.Arch = "arm64" }, api.UpgradeRequest{Ref: "1.1.0"}, "arch arm64"},
		{"older", nil, nil, func(n *node) { n.reg.target.Config.Version = "0.9.0" }, api.UpgradeRequest{Ref: "0.9.0"}, "older than"},
		{"same", nil, nil, func(n *node) { n.reg.target.Config.Version = "1.0.0" }, api.UpgradeRequest{Ref: "1.0.0"}, "the same as"},
		{"too large", nil, nil, func(n *node) { n.reg.target.Update.Slot.Size = slotSize + 1 }, api.UpgradeRequest{Ref: "1.1.0"}, "larger than slot b"},
		{"unreachable", nil, nil, func(n *node) { n.reg.resolveErr = errors.New("dial tcp 10.0.2.2:5000: connection refused") }, api.UpgradeRequest{Ref: "1.1.0"}, "connection refused"},
		{"no update section", nil, nil, nil, api.UpgradeRequest{Ref: "1.1.0"}, "no update section"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t)
			if tc.change != nil {
				tc.change(n)
			}
			o := bootOpts{slot: contract.SlotA, version: "1.0.0", conf: tc.conf, verify: tc.verify}
			u := n.boot(o)
			if tc.name == "no update section" {
				u.o.Config = nil
			}
			u.Recover(context.Background())
			before := n.esp
			entries, _ := before.ReadDir(contract.ESPEntriesDir)
			_, err := u.Start(context.Background(), tc.req)
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Start = %v, want a refusal with %q", err, tc.want)
			}
			if !bytes.Equal(n.slots[contract.SlotB].snapshot(), make([]byte, slotSize)) {
				t.Fatal("slot b was written")
			}
			after, _ := n.esp.ReadDir(contract.ESPEntriesDir)
			if fmt.Sprint(after) != fmt.Sprint(entries) {
				t.Fatalf("entries changed: %v → %v", entries, after)
			}
			if p := u.Progress(); p.Phase != string(PhaseFailed) || !strings.Contains(p.Reason, tc.want) {
				t.Fatalf("progress = %+v, want the reason recorded", p)
			}
		})
	}
}

func TestOneAtATimeAndTrialPending(t *testing.T) {
	n := newNode(t)
	u := n.boot(bootOpts{slot: contract.SlotA, version: "1.0.0"})
	u.Recover(context.Background())
	u.mu.Lock()
	u.running = true
	u.mu.Unlock()
	if _, err := u.Start(context.Background(), api.UpgradeRequest{Ref: "1.1.0"}); !errors.Is(err, api.ErrUpgradeBusy) {
		t.Fatalf("second upgrade = %v, want busy", err)
	}
	u.mu.Lock()
	u.running = false
	u.mu.Unlock()
	u.Start(context.Background(), api.UpgradeRequest{Ref: "1.1.0"})
	n.waitReboot()
	n.firmware()
	u = n.boot(bootOpts{slot: contract.SlotB, version: "1.1.0"})
	u.Recover(context.Background())
	if _, err := u.Start(context.Background(), api.UpgradeRequest{Ref: "1.2.0"}); err == nil || !strings.Contains(err.Error(), "trial") {
		t.Fatalf("upgrade during a trial = %v, want a refusal", err)
	}
}

func TestResumeAfterCut(t *testing.T) {
	old := checkpointEvery
	checkpointEvery = 256 << 10
	t.Cleanup(func() { checkpointEvery = old })
	for _, tc := range []struct {
		name     string
		damage   bool
		wantFrom int64
	}{
		{"resumes at the checkpoint", false, 1 << 20},
		{"damaged bytes start over", true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t)
			n.reg.cutAfter = 1<<20 + 1000 // past the 4th checkpoint
			u := n.boot(bootOpts{slot: contract.SlotA, version: "1.0.0"})
			u.Recover(context.Background())
			u.Start(context.Background(), api.UpgradeRequest{Ref: "1.1.0"})
			deadline := time.Now().Add(5 * time.Second)
			for u.Progress().Phase != string(PhaseFailed) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if p := u.Progress(); p.Phase != string(PhaseFailed) || !strings.Contains(p.Reason, "connection reset") {
				t.Fatalf("progress = %+v, want failed on the cut", p)
			}
			if tc.damage {
				n.slots[contract.SlotB].WriteAt([]byte("bit rot"), 4096)
			}
			// The agent restarts (a reboot); the retry resumes or not.
			u = n.boot(bootOpts{slot: contract.SlotA, version: "1.0.0"})
			u.Recover(context.Background())
			if _, err := u.Start(context.Background(), api.UpgradeRequest{Ref: "1.1.0"}); err != nil {
				t.Fatal(err)
			}
			n.waitReboot()
			if got := n.reg.froms; len(got) != 2 || got[0] != 0 || got[1] != tc.wantFrom {
				t.Fatalf("slot fetches began at %v, want [0 %d]", got, tc.wantFrom)
			}
			slot := n.reg.blobs[n.reg.target.Update.Slot.Digest]
			if !bytes.Equal(n.slots[contract.SlotB].snapshot()[:len(slot)], slot) {
				t.Fatal("slot b does not hold the image")
			}
		})
	}
}

// squashfsLike makes data look like a squashfs image of its length (the
// superblock fields a delta reads).
func squashfsLike(data []byte) {
	copy(data, "hsqs")
	binary.LittleEndian.PutUint64(data[40:48], uint64(len(data)))
}

func TestDeltaFetchesOnlyWhatChanged(t *testing.T) {
	n := newNode(t)
	// Slot a holds 1.0.0; 1.1.0 is the same image with 4 KiB changed in
	// the middle.
	old := make([]byte, 3<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range old {
		old[i] = byte(rng.Uint32())
	}
	squashfsLike(old)
	copy(n.slots[contract.SlotA].b, old)
	next := bytes.Clone(old)
	for i := 0; i < 4096; i++ {
		next[len(next)/2+i] ^= 0xff
	}
	n.reg = artifactOf("1.1.0", next, true)

	u := n.boot(bootOpts{slot: contract.SlotA, version: "1.0.0"})
	// The running slot's boot files are the release's: copied, not fetched.
	u.o.ESP = fstest.MapFS{
		"cairn/a/" + contract.KernelFile: {Data: n.reg.blobs[n.reg.target.Update.Kernel.Digest]},
		"cairn/a/" + contract.InitrdFile: {Data: n.reg.blobs[n.reg.target.Update.Initrd.Digest]},
	}
	u.Recover(context.Background())
	if _, err := u.Start(context.Background(), api.UpgradeRequest{Ref: "1.1.0"}); err != nil {
		t.Fatal(err)
	}
	n.waitReboot()
	if !bytes.Equal(n.slots[contract.SlotB].snapshot()[:len(next)], next) {
		t.Fatal("slot b does not hold the new image")
	}
	if k, _ := n.esp.ReadFile("cairn/b/" + contract.KernelFile); !bytes.Equal(k, n.reg.blobs[n.reg.target.Update.Kernel.Digest]) {
		t.Fatalf("slot b's kernel is %q", k)
	}
	got := n.reg.Received()
	t.Logf("delta: %d of %d bytes fetched (%.2f%%) in %d ranges", got, len(next), 100*float64(got)/float64(len(next)), n.reg.ranges)
	if got > int64(len(next))/10 || len(n.reg.froms) != 0 {
		t.Fatalf("fetched %d bytes (%d whole downloads) for a 4 KiB change of a %d-byte slot", got, len(n.reg.froms), len(next))
	}
}

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"1.0.0", "1.0.0", 0},
		{"1.0.1", "1.0.0", 1},
		{"1.10.0", "1.9.0", 1},
		{"1.3.0-rc.1", "1.3.0", -1},
		{"1.3.0-rc.2", "1.3.0-rc.10", -1},
		{"1.3.0-alpha", "1.3.0-1", 1},
		{"v2.0.0", "1.9.9", 1},
		{"1.0.0+build.5", "1.0.0", 0},
		{"junk", "1.0.0", -1},
	} {
		if got := compareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestQualify(t *testing.T) {
	for _, tc := range []struct{ ref, repo, want string }{
		{"1.2.0", "reg/edge", "reg/edge:1.2.0"},
		{":1.2.0", "reg/edge", "reg/edge:1.2.0"},
		{"@sha256:ab", "reg/edge", "reg/edge@sha256:ab"},
		{"other:5000/x:1", "reg/edge", "other:5000/x:1"},
		{"1.2.0", "", "1.2.0"},
	} {
		if got := qualify(tc.ref, tc.repo); got != tc.want {
			t.Errorf("qualify(%q, %q) = %q, want %q", tc.ref, tc.repo, got, tc.want)
		}
	}
}

func FuzzParseRecord(f *testing.F) {
	r := Record{Phase: PhaseDownloading, Digest: digestOf(nil), Slot: contract.SlotB,
		Checkpoint: &Checkpoint{Blob: digestOf(nil), Slot: contract.SlotB, Written: 5, Hash: hashState(sha256.New())}}
	b, _ := json.Marshal(r)
	f.Add(b)
	f.Add([]byte(`{"phase":"committed"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRecord(b)
		if err != nil {
			return
		}
		if !phases[r.Phase] {
			t.Fatalf("accepted phase %q", r.Phase)
		}
		if r.Checkpoint != nil {
			if _, err := resumeHash(r.Checkpoint.Hash); err != nil {
				t.Fatal(err)
			}
		}
	})
}
