package sdboot

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/contract"
)

// A scenario is a list of steps, each a line:
//
//	install SLOT VERSION    Install (slot's files say which version they are)
//	arm|commit|bad SLOT     ArmTrial, Commit, MarkBad
//	boot SLOT trial|good    simBoot must boot SLOT, and Trial must say so
//	default SLOT            Default must be SLOT
//
// A step starting with "!" must fail (and "!trial SLOT": Trial must fail).
var scenarios = []struct {
	name  string
	steps []string
}{
	{"fresh image, as the builder writes it", []string{
		"install a 1.0", "commit a", "default a", "boot a good", "boot a good",
	}},
	{"upgrade, the health gate passes", []string{
		"install a 1.0", "commit a", "boot a good",
		"install b 2.0", "default a", "arm b", "default b",
		"boot b trial", "commit b", "default b", "boot b good", "boot b good",
	}},
	{"upgrade, the health gate fails", []string{
		"install a 1.0", "commit a", "install b 2.0", "arm b",
		"boot b trial", "bad b", "default a", "boot a good", "boot a good",
	}},
	{"trial cut or panics: the counter falls back", []string{
		"install a 1.0", "commit a", "install b 2.0", "arm b",
		"boot b trial", "boot a good", "default a", "boot a good",
	}},
	{"rollback after a commit (the letter and version below)", []string{
		"install a 1.0", "commit a", "install b 2.0", "arm b", "boot b trial", "commit b",
		"install a 3.0", "arm a", "default a", "boot a trial", "boot b good", "default b",
	}},
	{"forced downgrade", []string{
		"install a 2.0", "commit a", "install b 1.0", "arm b", "boot b trial", "commit b",
		"boot b good", "install a 0.9", "arm a", "boot a trial", "commit a", "boot a good",
	}},
	{"second upgrade after a rollback", []string{
		"install a 1.0", "commit a", "install b 2.0", "arm b", "boot b trial", "bad b", "boot a good",
		"install b 2.1", "arm b", "boot b trial", "commit b", "boot b good",
		"install a 3.0", "arm a", "boot a trial", "commit a", "boot a good",
	}},
	{"commit the other slot by hand, without a trial", []string{
		"install a 1.0", "commit a", "install b 2.0", "arm b", "boot b trial", "commit b",
		"commit a", "default a", "boot a good",
	}},
	{"armed twice, installed again while armed", []string{
		"install a 1.0", "commit a", "install b 2.0", "arm b", "arm b", "install b 2.1", "default a",
		"arm b", "boot b trial", "boot a good",
	}},
	{"refusals", []string{
		"install a 1.0", "!arm a", "commit a", "!install a 1.1", "!arm a", "!bad a", "!arm b", "!commit b",
		"install b 2.0", "arm b", "boot b trial", "bad b", "!trial b", "!arm b", "!commit b", "default a",
	}},
}

// harness runs steps on a Loader over fsys.
type harness struct {
	fs bootloader.FS
	l  *Loader
}

func newHarness(fsys bootloader.FS) *harness {
	return &harness{fs: fsys, l: New(fsys, nil)}
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
		err = h.l.Install(slot, bootloader.BootFiles{
			Kernel:  strings.NewReader("kernel " + f[2]),
			Initrd:  strings.NewReader("initrd " + f[2]),
			Cmdline: []string{"console=ttyS0"},
			Title:   "Cairn " + f[2],
			Version: f[2],
		})
	case "arm":
		_, err = h.l.ArmTrial(slot)
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
	case "boot":
		var got contract.Slot
		if got, err = simBoot(h.fs); err != nil {
			return err
		}
		if got != slot {
			return fmt.Errorf("booted %s", got)
		}
		trial, err := h.l.Trial(got)
		if err != nil {
			return err
		}
		if trial != (f[2] == "trial") {
			return fmt.Errorf("Trial(%s) = %v", got, trial)
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

// clone copies a MemFS, so that a simulated boot can look without changing.
func clone(t *testing.T, m *bootloader.MemFS) *bootloader.MemFS {
	t.Helper()
	var c bootloader.MemFS
	err := m.Walk(func(name string, data []byte) error {
		return c.WriteFile(name, strings.NewReader(string(data)))
	})
	if err != nil {
		t.Fatal(err)
	}
	return &c
}

func TestScenarios(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			for _, kind := range []string{"mem", "dir"} {
				var fsys bootloader.FS = bootloader.DirFS(t.TempDir())
				mem, isMem := &bootloader.MemFS{}, kind == "mem"
				if isMem {
					fsys = mem
				}
				h := newHarness(fsys)
				for i, step := range sc.steps {
					if err := h.do(step); err != nil {
						t.Fatalf("%s: step %d %q: %v", kind, i, step, err)
					}
					if !isMem {
						continue
					}
					// The package's order must be systemd-boot's.
					want, werr := h.l.Default()
					got, gerr := simBoot(clone(t, mem))
					if (werr == nil) != (gerr == nil) || got != want {
						t.Fatalf("after step %d %q: Default() = %s, %v; simulated systemd-boot boots %s, %v", i, step, want, werr, got, gerr)
					}
				}
			}
		})
	}
}

// TestPowerCuts cuts the power after every prefix of every step's mutations
// in every scenario: the next boot must be a slot that the step started or
// ended with as the default (a committed slot, or the armed trial), and the
// step repeated (the agent's retry) and the rest of the scenario must run
// as without the cut.
func TestPowerCuts(t *testing.T) {
	for _, sc := range scenarios {
		if strings.Contains(strings.Join(sc.steps, ","), "!") {
			continue
		}
		t.Run(sc.name, func(t *testing.T) {
			cuts := 0
			for i, step := range sc.steps {
				before, after, ok := defaults(t, sc.steps, i)
				if !ok {
					continue // nothing bootable yet: the builder's steps
				}
				for k := 0; ; k++ {
					mem := &bootloader.MemFS{}
					replay(t, mem, sc.steps[:i])
					cut := &cutFS{FS: mem, left: k}
					err := newHarness(cut).do(step)
					if err == nil {
						break
					}
					if !errors.Is(err, errCut) {
						t.Fatalf("step %d %q with %d mutations: %v", i, step, k, err)
					}
					cuts++
					where := fmt.Sprintf("cut in step %d %q after %v", i, step, cut.log)
					booted, err := simBoot(clone(t, mem))
					if err != nil || booted != before && booted != after {
						t.Fatalf("%s: boots %s, %v; want %s or %s", where, booted, err, before, after)
					}
					if strings.HasPrefix(step, "boot") {
						continue
					}
					h := newHarness(mem)
					for j, s := range sc.steps[i:] {
						if err := h.do(s); err != nil {
							t.Fatalf("%s, then step %d %q: %v", where, i+j, s, err)
						}
					}
				}
			}
			t.Logf("%d power cuts", cuts)
		})
	}
}

// defaults are the slots Default names before and after step i of steps,
// run without cuts; ok is false if nothing was bootable before it.
func defaults(t *testing.T, steps []string, i int) (before, after contract.Slot, ok bool) {
	t.Helper()
	mem := &bootloader.MemFS{}
	replay(t, mem, steps[:i])
	l := New(mem, nil)
	before, err := l.Default()
	if err != nil {
		return "", "", false
	}
	replay(t, mem, steps[i:i+1])
	after, err = l.Default()
	if err != nil {
		t.Fatalf("after step %d %q: %v", i, steps[i], err)
	}
	return before, after, true
}

func replay(t *testing.T, fsys bootloader.FS, steps []string) {
	t.Helper()
	h := newHarness(fsys)
	for i, s := range steps {
		if err := h.do(s); err != nil {
			t.Fatalf("step %d %q: %v", i, s, err)
		}
	}
}

func TestBadInput(t *testing.T) {
	files := func(cmdline ...string) bootloader.BootFiles {
		return bootloader.BootFiles{Kernel: strings.NewReader("k"), Cmdline: cmdline, Title: "t"}
	}
	l := New(&bootloader.MemFS{}, nil)
	for _, tt := range []struct {
		name  string
		files bootloader.BootFiles
		want  string
	}{
		{"no kernel", bootloader.BootFiles{}, "no kernel"},
		{"slot on the command line", files("quiet", contract.SlotOption(contract.SlotB)), "already names a slot"},
		{"newline in the command line", files("quiet\nlinux /evil"), "line break"},
		{"newline in the title", bootloader.BootFiles{Kernel: strings.NewReader("k"), Title: "x\ninitrd /evil"}, "line break"},
		{"board files", bootloader.BootFiles{Kernel: strings.NewReader("k"), Files: []bootloader.File{{Name: "config.txt", Data: strings.NewReader("")}}}, "no boot partition per slot"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := l.Install(contract.SlotA, tt.files); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Install: %v; want an error saying %q", err, tt.want)
			}
		})
	}
}

func TestForeignEntries(t *testing.T) {
	mem := &bootloader.MemFS{}
	h := newHarness(mem)
	replay(t, mem, []string{"install a 1.0", "commit a"})
	// Other tools' entries are left alone; an entry named like ours that
	// is not ours is an error, since "default cairn-*" would match it.
	if err := mem.WriteFile(contract.ESPEntriesDir+"/debian.conf", strings.NewReader("linux /vmlinuz\n")); err != nil {
		t.Fatal(err)
	}
	if err := h.do("default a"); err != nil {
		t.Errorf("with another tool's entry: %v", err)
	}
	if err := mem.WriteFile(contract.ESPEntriesDir+"/cairn-x.conf", strings.NewReader("linux /vmlinuz\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := h.l.Default(); err == nil || !strings.Contains(err.Error(), "remove it") {
		t.Errorf("with a stray cairn-x.conf: %v; want an error saying to remove it", err)
	}
}

func TestStagedEntryChecked(t *testing.T) {
	mem := &bootloader.MemFS{}
	replay(t, mem, []string{"install a 1.0", "commit a", "install b 2.0"})
	// A staged entry that boots the other slot's kernel (a mix-up) must
	// not be armed.
	if err := mem.WriteFile(stagedEntry(contract.SlotB), strings.NewReader("linux /cairn/a/vmlinuz\noptions cairn.slot=b\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := New(mem, nil).ArmTrial(contract.SlotB); err == nil || !strings.Contains(err.Error(), "does not boot slot b") {
		t.Errorf("ArmTrial with a mixed-up staged entry: %v", err)
	}
}

func TestLegacyNames(t *testing.T) {
	// An image from before generations: cairn-a.conf. The first upgrade
	// must still boot its trial, and fall back to a.
	mem := &bootloader.MemFS{}
	replay(t, mem, []string{"install a 1.0", "commit a"})
	l := New(mem, nil)
	es, err := l.entries()
	if err != nil || len(es) != 1 {
		t.Fatalf("entries: %v, %v", es, err)
	}
	content, err := mem.ReadFile(es[0].file)
	if err != nil {
		t.Fatal(err)
	}
	if err := mem.WriteFile(contract.ESPEntriesDir+"/cairn-a.conf", strings.NewReader(string(content))); err != nil {
		t.Fatal(err)
	}
	if err := mem.Remove(es[0].file); err != nil {
		t.Fatal(err)
	}
	replay(t, mem, []string{"default a", "install b 2.0", "arm b", "boot b trial", "boot a good", "arm b", "boot b trial", "commit b", "boot b good"})
}
