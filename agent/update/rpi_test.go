package update

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/bootloader/tryboot"
	"github.com/cairn-edge/cairn/agent/config"
	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/agent/health"
	"github.com/cairn-edge/cairn/agent/release"
	"github.com/cairn-edge/cairn/agent/update/artifact"
)

// piRelease is what a Raspberry Pi's release carries besides its slot.
type piRelease struct {
	version, kernel, initrd string
	board                   map[string]string // board file → content
}

func (r piRelease) bootFiles() bootloader.BootFiles {
	bf := bootloader.BootFiles{Kernel: strings.NewReader(r.kernel), Initrd: strings.NewReader(r.initrd), Cmdline: []string{"console=serial0,115200"}, Version: r.version}
	for name, data := range r.board {
		bf.Files = append(bf.Files, bootloader.File{Name: name, Data: strings.NewReader(data)})
	}
	return bf
}

var pi10 = piRelease{"1.0.0", "kernel 1.0", "initrd 1.0", map[string]string{
	"start4.elf": "start4 2024", "bcm2711-rpi-4-b.dtb": "dtb 6.1", "overlays/disable-bt.dtbo": "bt", "config.txt": "enable_uart=1\n",
	"overlays/overlay_map.dtb": "", // an empty file is copied like any other
}}

// piNode is a Raspberry Pi's card in memory: CAIRN-AUTO, BOOT-A and
// BOOT-B as tryboot lays them down, and the firmware's device tree.
type piNode struct {
	*node
	auto *bootloader.MemFS
	boot map[contract.Slot]*bootloader.MemFS
	dt   fstest.MapFS
}

func newPiNode(t *testing.T) *piNode {
	card, err := tryboot.NewCard(pi10.bootFiles())
	if err != nil {
		t.Fatal(err)
	}
	n := &piNode{node: newNode(t), auto: card.Auto, boot: card.Boot, dt: fstest.MapFS{}}
	n.firmwareBoots(contract.SlotA, false)
	return n
}

// firmwareBoots leaves the device tree as the firmware does after it
// booted slot.
func (n *piNode) firmwareBoots(slot contract.Slot, tryboot bool) {
	cell := func(v uint32) *fstest.MapFile { return &fstest.MapFile{Data: binary.BigEndian.AppendUint32(nil, v)} }
	n.dt[contract.RPiDTTryboot] = cell(map[bool]uint32{false: 0, true: 1}[tryboot])
	n.dt[contract.RPiDTPartition] = cell(slot.RPiBootPartition())
}

func (n *piNode) loader(t *testing.T) *tryboot.Loader {
	l, err := tryboot.New(n.auto, map[contract.Slot]bootloader.FS{contract.SlotA: n.boot[contract.SlotA], contract.SlotB: n.boot[contract.SlotB]}, n.dt, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// publish makes the registry hold r as an artifact for the Pi, with a
// random slot image; layer, when not nil, replaces the board files layer.
func (n *piNode) publish(t *testing.T, r piRelease, layer func([]byte) []byte) {
	reg := n.artifact(r.version, 1<<20)
	tgt := &reg.target
	tgt.Config.Board, tgt.Config.Arch = "rpi4", "arm64"
	kernel, initrd := []byte(r.kernel), []byte(r.initrd)
	tgt.Update.Kernel = artifact.Descriptor{MediaType: artifact.KernelMediaType, Digest: digestOf(kernel), Size: int64(len(kernel))}
	tgt.Update.Initrd = artifact.Descriptor{MediaType: artifact.InitrdMediaType, Digest: digestOf(initrd), Size: int64(len(initrd))}
	reg.blobs[tgt.Update.Kernel.Digest], reg.blobs[tgt.Update.Initrd.Digest] = kernel, initrd
	var files []artifact.BootFileData
	for name, data := range r.board {
		files = append(files, artifact.BootFileData{Name: name, Data: []byte(data)})
	}
	var b bytes.Buffer
	var err error
	if tgt.Config.BootFiles, err = artifact.WriteBootFiles(&b, files); err != nil {
		t.Fatal(err)
	}
	tar := b.Bytes()
	if layer != nil {
		tar = layer(tar)
	}
	tgt.Update.BootFiles = &artifact.Descriptor{MediaType: artifact.BootFilesMediaType, Digest: digestOf(tar), Size: int64(len(tar))}
	reg.blobs[tgt.Update.BootFiles.Digest] = tar
	mb, _ := json.Marshal(tgt.Update)
	tgt.Digest = digestOf(mb)
	n.reg = reg
}

// bootPi starts an agent's Updater on the Pi, running slot with version;
// its services are failing if sick.
func (n *piNode) bootPi(t *testing.T, slot contract.Slot, version string, sick bool) *Updater {
	hm := health.New()
	if sick {
		hm.Part("services").Set(health.Failed, "hello exited with status 3")
	} else {
		hm.Part("services").Set(health.OK, "all running")
	}
	u := New(Options{
		Release:    release.Release{Name: "edge", Version: version, Board: "rpi4", Arch: "arm64"},
		Running:    slot,
		Config:     &config.Update{Repository: "reg.test/edge", AllowUnsigned: true, GateTimeout: 200 * time.Millisecond},
		Registry:   n.reg,
		Verify:     func(context.Context, string, string) (bool, string, error) { return true, "key test", nil },
		Bootloader: n.loader(t),
		Slots:      n.slots,
		Health:     hm,
		RecordPath: filepath.Join(filepath.Dir(n.record), "pi-record.json"),
		Reboot:     func(r bootloader.Reboot) error { n.reboots <- r; return nil },
		Log:        slog.New(slog.DiscardHandler),
	})
	if _, err := u.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	return u
}

func (n *piNode) upgrade(t *testing.T, u *Updater, ref string) bootloader.Reboot {
	t.Helper()
	if _, err := u.Start(context.Background(), api.UpgradeRequest{Ref: ref}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-n.reboots:
		return r
	case <-time.After(10 * time.Second):
		t.Fatalf("no reboot; progress %+v", u.Progress())
	}
	return bootloader.Reboot{}
}

// TestUpgradeRPi: a Pi upgrades through tryboot. Board files that did not
// change are copied from BOOT-A, the changed ones taken from the layer;
// BOOT-B then holds the new release's files exactly, the reboot asks for
// the tryboot flag, and the trial boot commits.
func TestUpgradeRPi(t *testing.T) {
	n := newPiNode(t)
	pi11 := piRelease{"1.1.0", "kernel 1.1", "initrd 1.1", map[string]string{
		"start4.elf": "start4 2024", "bcm2711-rpi-4-b.dtb": "dtb 6.6", "overlays/disable-bt.dtbo": "bt", "config.txt": "enable_uart=1\narm_boost=1\n",
	}}
	n.publish(t, pi11, nil)
	u := n.bootPi(t, contract.SlotA, "1.0.0", false)
	if r := n.upgrade(t, u, "1.1.0"); r.Arg != contract.RPiTrybootArg {
		t.Fatalf("reboot %+v, want the tryboot argument", r)
	}
	if got := n.reg.fetched[artifact.BootFilesMediaType]; got != 1 {
		t.Errorf("the board files layer was fetched %d times, want once (two files changed)", got)
	}
	l := n.loader(t)
	for name, want := range pi11.board {
		rc, err := l.OpenFile(contract.SlotB, name)
		if err != nil {
			t.Errorf("BOOT-B's %s: %v", name, err)
			continue
		}
		var got bytes.Buffer
		got.ReadFrom(rc)
		if got.String() != want {
			t.Errorf("BOOT-B's %s holds %q, want %q", name, got.String(), want)
		}
	}
	if k, _ := n.boot[contract.SlotB].ReadFile(contract.RPiKernelFile); string(k) != pi11.kernel {
		t.Errorf("BOOT-B's kernel is %q", k)
	}
	slot := n.reg.blobs[n.reg.target.Update.Slot.Digest]
	if !bytes.Equal(n.slots[contract.SlotB].snapshot()[:len(slot)], slot) {
		t.Fatal("slot b does not hold the artifact's slot image")
	}

	// The firmware, with the flag set, boots [tryboot]'s partition.
	n.firmwareBoots(contract.SlotB, true)
	u = n.bootPi(t, contract.SlotB, "1.1.0", false)
	if err := u.Gate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if def, err := n.loader(t).Default(); err != nil || def != contract.SlotB {
		t.Fatalf("after the gate the default is %s, %v; want b", def, err)
	}
	if p := u.Progress(); p.Phase != string(PhaseCommitted) {
		t.Fatalf("progress %+v, want committed", p)
	}
}

// TestUpgradeRPiRollsBack: a trial that fails its gate is marked bad and
// reboots plainly (no tryboot flag), into slot a.
func TestUpgradeRPiRollsBack(t *testing.T) {
	n := newPiNode(t)
	next := pi10
	next.version, next.kernel = "1.1.0", "kernel 1.1"
	n.publish(t, next, nil)
	n.upgrade(t, n.bootPi(t, contract.SlotA, "1.0.0", false), "1.1.0")
	n.firmwareBoots(contract.SlotB, true)
	u := n.bootPi(t, contract.SlotB, "1.1.0", true)
	if err := u.Gate(context.Background()); err == nil {
		t.Fatal("a failing service passed the gate")
	}
	select {
	case r := <-n.reboots:
		if r.Arg != "" {
			t.Errorf("the rollback reboots with %q, want a plain reboot", r.Arg)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reboot after the failed gate")
	}
	if def, err := n.loader(t).Default(); err != nil || def != contract.SlotA {
		t.Errorf("after the rollback the default is %s, %v; want a", def, err)
	}
}

// TestUpgradeRPiUnchangedBootFiles: a release that changed only its slot
// downloads no boot files: kernel, initramfs and every board file come
// from the running slot's boot partition.
func TestUpgradeRPiUnchangedBootFiles(t *testing.T) {
	n := newPiNode(t)
	same := pi10
	same.version = "1.0.1"
	n.publish(t, same, nil)
	n.upgrade(t, n.bootPi(t, contract.SlotA, "1.0.0", false), "1.0.1")
	for _, mt := range []string{artifact.BootFilesMediaType, artifact.KernelMediaType, artifact.InitrdMediaType} {
		if got := n.reg.fetched[mt]; got != 0 {
			t.Errorf("%s fetched %d times, want none", mt, got)
		}
	}
	if got, _ := n.boot[contract.SlotB].ReadFile("start4.elf"); string(got) != pi10.board["start4.elf"] {
		t.Errorf("BOOT-B's start4.elf holds %q", got)
	}
}

// TestUpgradeRPiHostileBootFiles: a board files layer that is not what
// the config lists fails the upgrade before slot b is touched.
func TestUpgradeRPiHostileBootFiles(t *testing.T) {
	for _, tt := range []struct {
		name  string
		layer func([]byte) []byte
		want  string
	}{
		{"content swapped", func(b []byte) []byte {
			return bytes.Replace(b, []byte("dtb 6.6"), []byte("dtb 0.0"), 1)
		}, "does not hash"},
		{"cut short", func(b []byte) []byte { return b[:600] }, "board files layer"},
		{"not a tar", func([]byte) []byte { return bytes.Repeat([]byte("x"), 2048) }, "not a tar"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := newPiNode(t)
			changed := pi10
			changed.version = "1.1.0"
			changed.board = map[string]string{"start4.elf": "start4 2025", "bcm2711-rpi-4-b.dtb": "dtb 6.6", "config.txt": "enable_uart=1\n"}
			n.publish(t, changed, tt.layer)
			u := n.bootPi(t, contract.SlotA, "1.0.0", false)
			if _, err := u.Start(context.Background(), api.UpgradeRequest{Ref: "1.1.0"}); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for u.Progress().Phase != string(PhaseFailed) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if p := u.Progress(); p.Phase != string(PhaseFailed) || !strings.Contains(p.Reason, tt.want) {
				t.Fatalf("progress %+v, want failed saying %q", p, tt.want)
			}
			for _, name := range []string{contract.RPiKernelFile, contract.RPiConfigFile, "start4.elf"} {
				if _, err := n.boot[contract.SlotB].ReadFile(name); err == nil {
					t.Errorf("BOOT-B was written: it holds %s", name)
				}
			}
			if !bytes.Equal(n.slots[contract.SlotB].snapshot(), make([]byte, slotSize)) {
				t.Error("slot b was written")
			}
		})
	}
}
