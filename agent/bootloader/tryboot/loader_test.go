package tryboot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/bootloader/tryboot/pifirmware"
	"github.com/cairn-edge/cairn/agent/contract"
)

// A scenario is a list of steps, each a line:
//
//	install SLOT VERSION    Install (every file says which slot and version it is)
//	arm SLOT                ArmTrial; its reboot sets the firmware's tryboot flag
//	commit|bad SLOT         Commit, MarkBad
//	boot SLOT trial|good    the simulated firmware boots SLOT (with the flag,
//	                        if set, which the boot clears), and Trial says so
//	default SLOT            Default must be SLOT
//	stray SLOT              a boot with the flag set by hand (reboot "0 tryboot"
//	                        without ArmTrial) boots SLOT, falling back if need be
//
// A step starting with "!" must fail (and "!trial SLOT": Trial must fail).
var scenarios = []struct {
	name  string
	steps []string
}{
	{"fresh card, as the builder writes it", []string{
		"install a 1.0", "commit a", "default a", "boot a good", "boot a good",
	}},
	{"upgrade, the health gate passes", []string{
		"install a 1.0", "commit a", "boot a good",
		"install b 2.0", "default a", "arm b", "default a",
		"boot b trial", "commit b", "default b", "boot b good", "boot b good",
	}},
	{"trial reset before a commit: back to a", []string{
		"install a 1.0", "commit a", "install b 2.0", "arm b",
		"boot b trial", "boot a good", "default a", "boot a good",
	}},
	{"upgrade, the health gate fails: marked bad, refused until reinstalled", []string{
		"install a 1.0", "commit a", "install b 2.0", "arm b",
		"boot b trial", "bad b", "default a", "stray a", "boot a good", "!arm b", "!commit b", "!trial b",
		"install b 2.1", "arm b", "boot b trial", "commit b", "boot b good",
	}},
	{"second upgrade, from b back to a", []string{
		"install a 1.0", "commit a", "install b 2.0", "arm b", "boot b trial", "commit b", "boot b good",
		"install a 3.0", "arm a", "default b", "boot a trial", "commit a", "default a", "boot a good",
	}},
	{"rollback after a commit", []string{
		"install a 1.0", "commit a", "install b 2.0", "arm b", "boot b trial", "commit b",
		"install a 3.0", "arm a", "boot a trial", "boot b good", "default b",
	}},
	{"armed twice, installed again while armed", []string{
		"install a 1.0", "commit a", "install b 2.0", "arm b", "arm b", "install b 2.1", "default a",
		"arm b", "boot b trial", "boot a good",
	}},
	{"commit the other slot by hand, without a trial", []string{
		"install a 1.0", "commit a", "install b 2.0", "commit b", "default b", "boot b good",
		"commit a", "default a", "boot a good",
	}},
	{"refusals", []string{
		"install a 1.0", "!arm a", "!bad a", "!default a", "commit a", "!install a 1.1", "!arm a", "!bad a",
		"!arm b", "!commit b", "bad b", "install b 2.0", "arm b", "boot b trial", "commit b",
		"!install b 2.1", "!bad b", "install a 3.0", "!bad b", "default b",
	}},
}

// harness runs steps on a Loader over a card.
type harness struct {
	auto  AutoFS
	boot  map[contract.Slot]bootloader.FS
	dt    fstest.MapFS // this boot's device tree, as the firmware left it
	flag  bool         // the firmware's one-shot tryboot flag
	l     *Loader
	model string
}

func newHarness(t *testing.T, auto AutoFS, boot map[contract.Slot]bootloader.FS, model string) *harness {
	t.Helper()
	h := &harness{auto: auto, boot: boot, dt: fstest.MapFS{}, model: model}
	var err error
	if h.l, err = New(auto, boot, h.dt, nil); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) card() pifirmware.Card {
	return pifirmware.Card{1: h.auto, 2: h.boot[contract.SlotA], 3: h.boot[contract.SlotB]}
}

// cell is a device-tree cell as the firmware writes it.
func cell(v uint32) *fstest.MapFile {
	return &fstest.MapFile{Data: binary.BigEndian.AppendUint32(nil, v)}
}

// testFiles are an install's files: each says its slot and version, so a
// boot of a partition mixing two installs shows.
func testFiles(slot contract.Slot, version string) bootloader.BootFiles {
	mark := string(slot) + " " + version
	return bootloader.BootFiles{
		Kernel:  strings.NewReader("kernel " + mark),
		Initrd:  strings.NewReader("initrd " + mark),
		Cmdline: []string{"console=serial0,115200", "cairn.test=" + version},
		Title:   "Cairn " + version,
		Version: version,
		Files: []bootloader.File{
			{Name: "start4.elf", Data: strings.NewReader("start4 " + mark)},
			{Name: "fixup4.dat", Data: strings.NewReader("fixup4 " + mark)},
			{Name: "bcm2711-rpi-4-b.dtb", Data: strings.NewReader("dtb " + mark)},
			{Name: "overlays/disable-bt.dtbo", Data: strings.NewReader("overlay " + mark)},
			{Name: "config.txt", Data: strings.NewReader("# board " + mark + "\n[pi4]\narm_boost=1\n[pi5]\ndtoverlay=disable-bt\n[all]\nenable_uart=1\n")},
		},
	}
}

// checkBoot checks a simulated boot: the booted partition is its slot's,
// and everything loaded is of one install of that slot.
func (h *harness) checkBoot(b pifirmware.Booted) error {
	if want := map[contract.Slot]int{contract.SlotA: 2, contract.SlotB: 3}[b.Slot]; b.Partition != want {
		return fmt.Errorf("booted slot %s from partition %d", b.Slot, b.Partition)
	}
	var version string
	for _, o := range strings.Fields(b.Cmdline) {
		if v, ok := strings.CutPrefix(o, "cairn.test="); ok {
			version = v
		}
	}
	mark := string(b.Slot) + " " + version
	if string(b.Kernel) != "kernel "+mark || string(b.Initrd) != "initrd "+mark {
		return fmt.Errorf("partition %d mixes installs: command line %q, kernel %q, initramfs %q", b.Partition, b.Cmdline, b.Kernel, b.Initrd)
	}
	fsys := h.card()[b.Partition]
	for _, f := range []string{"start4.elf", "overlays/disable-bt.dtbo", "config.txt"} {
		if data, err := fsys.ReadFile(f); err != nil || !strings.Contains(string(data), " "+mark) {
			return fmt.Errorf("partition %d booted %s, but its %s holds %q, %v", b.Partition, mark, f, data, err)
		}
	}
	return nil
}

// checkStamped boots every slot that has its stamp (as if autoboot.txt
// named it): an install is complete when its stamp is there, so the slot
// must boot, whole, by then.
func (h *harness) checkStamped() error {
	for _, slot := range contract.Slots {
		if _, err := h.boot[slot].ReadFile(contract.RPiStampFile); err != nil {
			continue
		}
		auto := &bootloader.MemFS{}
		if err := auto.WriteFile("autoboot.txt", strings.NewReader(fmt.Sprintf("[all]\nboot_partition=%d\n", map[contract.Slot]int{contract.SlotA: 2, contract.SlotB: 3}[slot]))); err != nil {
			return err
		}
		card := h.card()
		card[1] = auto
		b, err := pifirmware.Boot(card, h.model, false)
		if err == nil {
			err = h.checkBoot(b)
		}
		if err != nil {
			return fmt.Errorf("slot %s has its stamp, but does not boot: %v", slot, err)
		}
	}
	return nil
}

// start boots the card as the firmware does with the current flag, clears
// the flag and leaves the device tree as the firmware does.
func (h *harness) start(flag bool) (pifirmware.Booted, error) {
	b, err := pifirmware.Boot(h.card(), h.model, flag)
	if err != nil {
		return b, err
	}
	h.dt[contract.RPiDTTryboot] = cell(map[bool]uint32{false: 0, true: 1}[b.Tryboot && !b.FellBack])
	h.dt[contract.RPiDTPartition] = cell(uint32(b.Partition))
	return b, h.checkBoot(b)
}

// do runs one step; an error is a failed step or errCut.
func (h *harness) do(step string) error {
	fail := strings.HasPrefix(step, "!")
	f := strings.Fields(strings.TrimPrefix(step, "!"))
	slot, err := contract.ParseSlot(f[1])
	if err != nil {
		return err
	}
	switch f[0] {
	case "install":
		err = h.l.Install(slot, testFiles(slot, f[2]))
	case "arm":
		var r bootloader.Reboot
		if r, err = h.l.ArmTrial(slot); err == nil {
			if r.Arg != "0 tryboot" {
				return fmt.Errorf("ArmTrial's reboot argument is %q", r.Arg)
			}
			h.flag = true
		}
	case "commit":
		err = h.l.Commit(slot)
	case "bad":
		err = h.l.MarkBad(slot)
	case "trial":
		_, err = h.l.Trial(slot)
	case "default":
		var got contract.Slot
		if got, err = h.l.Default(); err == nil && got != slot {
			err = fmt.Errorf("default is %s", got)
		}
	case "stray":
		b, err := h.start(true)
		if err != nil {
			return err
		}
		if b.Slot != slot {
			return fmt.Errorf("booted %s (fell back from a trial: %v)", b.Slot, b.FellBack)
		}
		return nil
	case "boot":
		b, err := h.start(h.flag)
		h.flag = false
		if err != nil {
			return err
		}
		if b.Slot != slot || b.FellBack {
			return fmt.Errorf("booted %s (fell back from a trial: %v)", b.Slot, b.FellBack)
		}
		trial, err := h.l.Trial(b.Slot)
		if err != nil {
			return err
		}
		if trial != (f[2] == "trial") {
			return fmt.Errorf("Trial(%s) = %v", b.Slot, trial)
		}
		return nil
	default:
		return fmt.Errorf("unknown step %q", step)
	}
	switch {
	case errors.Is(err, errCut):
		return err
	case fail && err == nil:
		return errors.New("succeeded, want an error")
	case fail:
		return nil
	}
	return err
}

// memCard is an empty card in memory.
func memCard() (*bootloader.MemFS, map[contract.Slot]*bootloader.MemFS) {
	return &bootloader.MemFS{}, map[contract.Slot]*bootloader.MemFS{contract.SlotA: {}, contract.SlotB: {}}
}

func fsMap(m map[contract.Slot]*bootloader.MemFS) map[contract.Slot]bootloader.FS {
	out := map[contract.Slot]bootloader.FS{}
	for s, f := range m {
		out[s] = f
	}
	return out
}

func clone(t *testing.T, m *bootloader.MemFS) *bootloader.MemFS {
	t.Helper()
	var c bootloader.MemFS
	if err := m.Walk(func(name string, data []byte) error {
		return c.WriteFile(name, strings.NewReader(string(data)))
	}); err != nil {
		t.Fatal(err)
	}
	return &c
}

var models = []string{"pi4", "pi5"}

func TestScenarios(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			for _, kind := range []string{"mem", "dir"} {
				var h *harness
				if kind == "mem" {
					auto, boot := memCard()
					h = newHarness(t, auto, fsMap(boot), "pi4")
				} else {
					h = newHarness(t, bootloader.DirFS(t.TempDir()), map[contract.Slot]bootloader.FS{
						contract.SlotA: bootloader.DirFS(t.TempDir()), contract.SlotB: bootloader.DirFS(t.TempDir()),
					}, "pi5")
				}
				for i, step := range sc.steps {
					if err := h.do(step); err != nil {
						t.Fatalf("%s: step %d %q: %v", kind, i, step, err)
					}
					if err := h.checkStamped(); err != nil {
						t.Fatalf("%s: after step %d %q: %v", kind, i, step, err)
					}
					// Default must be what the firmware boots without the flag.
					want, werr := h.l.Default()
					b, gerr := pifirmware.Boot(h.card(), h.model, false)
					if werr == nil && (gerr != nil || b.Slot != want) {
						t.Fatalf("%s: after step %d %q: Default() = %s; the simulated firmware boots %s, %v", kind, i, step, want, b.Slot, gerr)
					}
				}
			}
		})
	}
}

// TestPowerCuts cuts the power after every prefix of every step's writes in
// every scenario, on a Pi 4 and a Pi 5. The next boot without the flag (a
// cut clears it) must boot a slot that the step started or ended with as
// the default. A boot with the flag (as if the reboot armed a trial right
// then) must boot a whole install of the other slot, which Trial must call
// a trial and which Commit refuses unless its install completed, or fall
// back to such a default. Then the step repeated (the agent's retry) and
// the rest of the scenario must run as without the cut.
func TestPowerCuts(t *testing.T) {
	total := 0
	for _, sc := range scenarios {
		for _, model := range models {
			t.Run(sc.name+"/"+model, func(t *testing.T) {
				cuts := 0
				for i, step := range sc.steps {
					before, after, ok := defaults(t, sc.steps, i)
					if !ok {
						continue // nothing bootable yet: the builder's steps
					}
					for k := 0; ; k++ {
						auto, boot := memCard()
						h := newHarness(t, auto, fsMap(boot), model)
						replay(t, h, sc.steps[:i])
						p := &power{left: k}
						cut := newHarness(t, &cutFS{auto, "CAIRN-AUTO", p, true}, map[contract.Slot]bootloader.FS{
							contract.SlotA: &cutFS{boot[contract.SlotA], "BOOT-A", p, false},
							contract.SlotB: &cutFS{boot[contract.SlotB], "BOOT-B", p, false},
						}, model)
						cut.flag = h.flag
						err := cut.do(step)
						if err == nil {
							break
						}
						if !errors.Is(err, errCut) {
							t.Fatalf("step %d %q with %d writes: %v", i, step, k, err)
						}
						cuts++
						where := fmt.Sprintf("cut in step %d %q after %q", i, step, p.log)
						h.flag = false // the cut clears it
						b, err := h.start(false)
						if err != nil || b.Slot != before && b.Slot != after {
							t.Fatalf("%s: boots %s, %v; want %s or %s", where, b.Slot, err, before, after)
						}
						if trial, err := h.l.Trial(b.Slot); err != nil || trial {
							t.Fatalf("%s: boot without the flag: Trial(%s) = %v, %v", where, b.Slot, trial, err)
						}
						if err := h.checkStamped(); err != nil {
							t.Fatalf("%s: %v", where, err)
						}
						checkFlagBoot(t, where, auto, boot, model, before, after)
						for j, s := range sc.steps[i:] {
							if err := h.do(s); err != nil {
								t.Fatalf("%s, then step %d %q: %v", where, i+j, s, err)
							}
						}
					}
				}
				t.Logf("%d power cuts", cuts)
				total += cuts
			})
		}
	}
	t.Logf("%d power cuts in all", total)
}

// checkFlagBoot boots a copy of the card with the tryboot flag set.
func checkFlagBoot(t *testing.T, where string, auto *bootloader.MemFS, boot map[contract.Slot]*bootloader.MemFS, model string, before, after contract.Slot) {
	t.Helper()
	c := map[contract.Slot]*bootloader.MemFS{contract.SlotA: clone(t, boot[contract.SlotA]), contract.SlotB: clone(t, boot[contract.SlotB])}
	h := newHarness(t, clone(t, auto), fsMap(c), model)
	b, err := h.start(true)
	switch {
	case err != nil:
		t.Fatalf("%s: boot with the flag: %v", where, err)
	case b.FellBack:
		if b.Slot != before && b.Slot != after {
			t.Fatalf("%s: boot with the flag fell back to %s; want %s or %s", where, b.Slot, before, after)
		}
	default:
		// A trial of a whole install, but perhaps not a finished one: a
		// cut between config.txt and the stamp, or a slot marked bad.
		trial, err := h.l.Trial(b.Slot)
		if _, serr := c[b.Slot].ReadFile(contract.RPiStampFile); serr == nil {
			if err != nil || !trial {
				t.Fatalf("%s: boot with the flag of %s: Trial = %v, %v", where, b.Slot, trial, err)
			}
			return
		}
		if err == nil {
			t.Fatalf("%s: booted %s with the flag, without its stamp: Trial = %v, want an error", where, b.Slot, trial)
		}
		if err := h.l.Commit(b.Slot); err == nil {
			t.Fatalf("%s: booted %s with the flag, without its stamp, and Commit took it", where, b.Slot)
		}
	}
}

// defaults are the slots Default names before and after step i of steps,
// run without cuts; ok is false if nothing was bootable before it.
func defaults(t *testing.T, steps []string, i int) (before, after contract.Slot, ok bool) {
	t.Helper()
	auto, boot := memCard()
	h := newHarness(t, auto, fsMap(boot), "pi4")
	replay(t, h, steps[:i])
	before, err := h.l.Default()
	if err != nil {
		return "", "", false
	}
	replay(t, h, steps[i:i+1])
	if after, err = h.l.Default(); err != nil {
		t.Fatalf("after step %d %q: %v", i, steps[i], err)
	}
	return before, after, true
}

func replay(t *testing.T, h *harness, steps []string) {
	t.Helper()
	for i, s := range steps {
		if err := h.do(s); err != nil {
			t.Fatalf("step %d %q: %v", i, s, err)
		}
	}
}

func TestTrial(t *testing.T) {
	auto, boot := memCard()
	h := newHarness(t, auto, fsMap(boot), "pi4")
	replay(t, h, []string{"install a 1.0", "commit a", "install b 2.0", "arm b"})
	for _, tt := range []struct {
		name          string
		tryboot, part uint32
		running       contract.Slot
		want          bool
	}{
		{"normal boot of the default", 0, 2, contract.SlotA, false},
		{"tryboot of b", 1, 3, contract.SlotB, true},
		{"tryboot, but of a's partition, running b", 1, 2, contract.SlotB, false},
		{"tryboot of the default's partition", 1, 2, contract.SlotA, false},
		{"b's partition without the flag", 0, 3, contract.SlotB, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h.dt[contract.RPiDTTryboot] = cell(tt.tryboot)
			h.dt[contract.RPiDTPartition] = cell(tt.part)
			if got, err := h.l.Trial(tt.running); err != nil || got != tt.want {
				t.Errorf("Trial(%s) with tryboot=%d partition=%d: %v, %v; want %v", tt.running, tt.tryboot, tt.part, got, err, tt.want)
			}
		})
	}
	// Once b is committed, its tryboot is a good boot.
	if err := h.l.Commit(contract.SlotB); err != nil {
		t.Fatal(err)
	}
	h.dt[contract.RPiDTTryboot], h.dt[contract.RPiDTPartition] = cell(1), cell(3)
	if got, err := h.l.Trial(contract.SlotB); err != nil || got {
		t.Errorf("Trial(b) after Commit(b): %v, %v; want false", got, err)
	}
	for name, dt := range map[string]fstest.MapFS{
		"no record":       {},
		"a short cell":    {contract.RPiDTTryboot: {Data: []byte{0, 1}}, contract.RPiDTPartition: cell(3)},
		"tryboot not 0/1": {contract.RPiDTTryboot: cell(2), contract.RPiDTPartition: cell(3)},
	} {
		for k := range h.dt {
			delete(h.dt, k)
		}
		for k, v := range dt {
			h.dt[k] = v
		}
		if _, err := h.l.Trial(contract.SlotB); err == nil {
			t.Errorf("Trial with %s in the device tree: no error", name)
		}
	}
}

func TestBadInput(t *testing.T) {
	files := func(mod func(*bootloader.BootFiles)) bootloader.BootFiles {
		f := testFiles(contract.SlotA, "1.0")
		mod(&f)
		return f
	}
	board := func(name, content string) func(*bootloader.BootFiles) {
		return func(f *bootloader.BootFiles) {
			f.Files = append(f.Files, bootloader.File{Name: name, Data: strings.NewReader(content)})
		}
	}
	config := func(content string) func(*bootloader.BootFiles) {
		return func(f *bootloader.BootFiles) {
			f.Files[len(f.Files)-1].Data = strings.NewReader(content)
		}
	}
	for _, tt := range []struct {
		name  string
		files bootloader.BootFiles
		want  string
	}{
		{"no kernel", files(func(f *bootloader.BootFiles) { f.Kernel = nil }), "no kernel"},
		{"no board files (an artifact without them)", files(func(f *bootloader.BootFiles) { f.Files = nil }), "no board files"},
		{"slot on the command line", files(func(f *bootloader.BootFiles) { f.Cmdline = []string{"cairn.slot=b"} }), "already names a slot"},
		{"newline in the command line", files(func(f *bootloader.BootFiles) { f.Cmdline = []string{"quiet\ninit=/bin/sh"} }), "line break"},
		{"newline in the version", files(func(f *bootloader.BootFiles) { f.Version = "1\nslot=b" }), "line break"},
		{"board cmdline.txt", files(board("cmdline.txt", "init=/bin/sh")), "Install writes itself"},
		{"board kernel, other case", files(board("VMLINUZ", "k")), "Install writes itself"},
		{"board stamp", files(board("cairn-slot.txt", "slot=a")), "Install writes itself"},
		{"board autoboot.txt", files(board("autoboot.txt", "")), "Install writes itself"},
		{"one file twice on FAT", files(board("Start4.elf", "")), "one file on FAT"},
		{"dot file", files(board("overlays/.x", "")), "dot-named"},
		{"absolute path", files(board("/config.txt", "")), "not a relative"},
		{"no content", files(func(f *bootloader.BootFiles) { f.Files = append(f.Files, bootloader.File{Name: "x.dtb"}) }), "no content"},
		{"config.txt names a kernel", files(config("[pi4]\nkernel=kernel8.img\n")), "chooses boot files"},
		{"config.txt names an initramfs", files(config("initramfs initrd.img followkernel\n")), "chooses boot files"},
		{"config.txt names a command line", files(config("  cmdline=other.txt\n")), "chooses boot files"},
		{"config.txt moves the kernel", files(config("os_prefix=next/\n")), "chooses boot files"},
		{"config.txt includes", files(config("include extra.txt\n")), "chooses boot files"},
		{"config.txt 32-bit", files(config("arm_64bit=0\n")), "64-bit"},
		{"config.txt not text", files(config("a\x00b")), "NUL"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			auto, boot := memCard()
			h := newHarness(t, auto, fsMap(boot), "pi4")
			if err := h.l.Install(contract.SlotA, tt.files); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Install: %v; want an error saying %q", err, tt.want)
			}
			if names, _ := boot[contract.SlotA].ReadDir("overlays"); len(names) > 0 {
				t.Errorf("a refused Install wrote %v", names)
			}
		})
	}
}

func TestConfigTxt(t *testing.T) {
	for _, tt := range []struct {
		name, board string
		initrd      bool
		want        string
	}{
		{"no board config.txt", "", true, "[all]\n# Cairn: slot b's boot files, as its install wrote them.\narm_64bit=1\nkernel=vmlinuz\ninitramfs initrd followkernel\ncmdline=cmdline.txt\n"},
		{"a board filter left open, no newline", "[pi4]\narm_boost=1", false, "[pi4]\narm_boost=1\n[all]\n# Cairn: slot b's boot files, as its install wrote them.\narm_64bit=1\nkernel=vmlinuz\ncmdline=cmdline.txt\n"},
		{"kernel_ settings are not kernel=", "kernel_address=0x80000\narm_64bit=1\n", false, "kernel_address=0x80000\narm_64bit=1\n[all]\n# Cairn: slot b's boot files, as its install wrote them.\narm_64bit=1\nkernel=vmlinuz\ncmdline=cmdline.txt\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := configTxt(contract.SlotB, []byte(tt.board), tt.initrd)
			if err != nil || string(got) != tt.want {
				t.Errorf("configTxt = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestNewCard(t *testing.T) {
	c, err := NewCard(testFiles(contract.SlotA, "1.0"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	if err := c.Auto.Walk(func(name string, data []byte) error {
		names = append(names, name)
		if len(data) != contract.RPiAutobootSize {
			t.Errorf("%s: %d bytes, want %d", name, len(data), contract.RPiAutobootSize)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != "autoboot.txt" {
		t.Errorf("CAIRN-AUTO holds %q, want autoboot.txt alone", names)
	}
	if err := c.Boot[contract.SlotB].Walk(func(name string, _ []byte) error { return fmt.Errorf("BOOT-B holds %s", name) }); err != nil {
		t.Error(err)
	}
	for _, model := range models {
		c, err := NewCard(testFiles(contract.SlotA, "1.0"))
		if err != nil {
			t.Fatal(err)
		}
		h := newHarness(t, c.Auto, fsMap(c.Boot), model)
		replay(t, h, []string{"default a", "boot a good", "install b 2.0", "arm b", "boot b trial", "commit b", "boot b good"})
	}
}
