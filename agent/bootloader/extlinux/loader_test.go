package extlinux

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/bootloader/powercut"
	"github.com/cairn-edge/cairn/agent/contract"
)

// A scenario is a list of steps, each a line:
//
//	install SLOT VERSION    Install (every file says which slot and version it is)
//	arm SLOT                ArmTrial (its reboot is a plain one)
//	commit|bad SLOT         Commit, MarkBad
//	boot SLOT trial|good    the simulated U-Boot boots SLOT, whole and without
//	                        falling back; its cairn-init runs RevertTrial; Trial says so
//	hang SLOT               U-Boot boots SLOT, cairn-init runs RevertTrial, then
//	                        the system hangs and is reset: no Trial, no Commit
//	kernelhang SLOT         U-Boot boots SLOT and its kernel hangs before cairn-init
//	default SLOT            Default must be SLOT
//	trial SLOT              Trial(SLOT) (for "!trial": it must fail)
//
// A step starting with "!" must fail.
var scenarios = []struct {
	name  string
	steps []string
}{
	{"fresh ESP, as the builder writes it", []string{
		"install a 1.0", "commit a", "default a", "boot a good", "boot a good",
	}},
	{"upgrade, the health gate passes", []string{
		"install a 1.0", "commit a", "boot a good",
		"install b 2.0", "default a", "arm b", "default b",
		"boot b trial", "default a", "commit b", "default b", "boot b good", "boot b good",
	}},
	{"trial reset before a commit: back to a", []string{
		"install a 1.0", "commit a", "install b 2.0", "arm b",
		"boot b trial", "boot a good", "default a", "boot a good",
	}},
	{"trial hangs after cairn-init: the reset boots a", []string{
		"install a 1.0", "commit a", "install b 2.0", "arm b",
		"hang b", "boot a good", "bad b", "boot a good",
	}},
	{"upgrade, the health gate fails: marked bad, refused until reinstalled", []string{
		"install a 1.0", "commit a", "install b 2.0", "arm b",
		"boot b trial", "bad b", "default a", "boot a good", "!arm b", "!commit b", "!trial b",
		"install b 2.1", "arm b", "boot b trial", "commit b", "boot b good",
	}},
	{"second upgrade, from b back to a", []string{
		"install a 1.0", "commit a", "install b 2.0", "arm b", "boot b trial", "commit b", "boot b good",
		"install a 3.0", "arm a", "default a", "boot a trial", "default b", "commit a", "default a", "boot a good",
	}},
	{"rollback after a commit", []string{
		"install a 1.0", "commit a", "install b 2.0", "arm b", "boot b trial", "commit b",
		"install a 3.0", "arm a", "boot a trial", "boot b good", "default b",
	}},
	{"armed twice, installed again while armed", []string{
		"install a 1.0", "commit a", "install b 2.0", "arm b", "arm b", "install b 2.1", "default a",
		"arm b", "boot b trial", "boot a good",
	}},
	{"armed, then marked bad before the reboot", []string{
		"install a 1.0", "commit a", "install b 2.0", "arm b", "bad b", "default a", "boot a good",
		"!arm b", "!trial b", "install b 2.1", "arm b", "boot b trial", "commit b", "boot b good",
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
	{"a kernel that hangs before cairn-init boots the trial again: the gap", []string{
		"install a 1.0", "commit a", "install b 2.0", "arm b",
		"kernelhang b", "kernelhang b", "default b", "boot b trial", "bad b", "boot a good",
	}},
}

// harness runs steps on a Loader over an ESP.
type harness struct {
	fs  FS
	l   *Loader
	env simEnv
	// committed is the slot the last successful Commit committed: the
	// model the ESP's state is judged against.
	committed contract.Slot
}

func newHarness(fsys FS, env simEnv) *harness {
	return &harness{fs: fsys, l: New(fsys, nil), env: env}
}

// testFiles are an install's files: each says its slot and version, so a
// boot that mixes two installs shows.
func testFiles(slot contract.Slot, version string) bootloader.BootFiles {
	mark := string(slot) + " " + version
	return bootloader.BootFiles{
		Kernel:  strings.NewReader("kernel " + mark),
		Initrd:  strings.NewReader("initrd " + mark),
		Cmdline: []string{"console=ttyS0,115200n8", "panic=10", "cairn.test=" + version},
		Title:   "Cairn " + version + " (slot " + strings.ToUpper(string(slot)) + ")",
		Version: version,
		Files:   []bootloader.File{{Name: "tegra210-p3450-0000.dtb", Data: strings.NewReader("dtb " + mark)}},
	}
}

// checkBoot checks a simulated boot: the label booted is its slot's, and
// everything loaded is of one install of that slot.
func (h *harness) checkBoot(b simBooted) (contract.Slot, error) {
	s, extl, version := simCmdline(b.bootargs)
	slot, err := contract.ParseSlot(s)
	if err != nil {
		return "", fmt.Errorf("booted label %s: %v (command line %q)", b.label, err, b.bootargs)
	}
	if b.label != "cairn-"+s || !extl {
		return "", fmt.Errorf("booted label %s with command line %q", b.label, b.bootargs)
	}
	mark := s + " " + version
	fdt := "dtb " + mark
	if !h.env.fdtAddrR {
		fdt = ""
	}
	if b.kernel != "kernel "+mark || b.initrd != "initrd "+mark || b.fdt != fdt {
		return "", fmt.Errorf("label %s mixes installs: command line %q, kernel %q, initramfs %q, device tree %q", b.label, b.bootargs, b.kernel, b.initrd, b.fdt)
	}
	return slot, nil
}

// start boots as U-Boot does, then runs what cairn-init runs first;
// kernelHang leaves cairn-init out.
func (h *harness) start(kernelHang bool) (simBooted, contract.Slot, error) {
	b, err := simBoot(h.fs, h.env)
	if err != nil {
		return b, "", err
	}
	slot, err := h.checkBoot(b)
	if err != nil || kernelHang {
		return b, slot, err
	}
	_, err = RevertTrial(h.fs, slot, nil)
	return b, slot, err
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
		if r, err = h.l.ArmTrial(slot); err == nil && r.Arg != "" {
			return fmt.Errorf("ArmTrial's reboot argument is %q, want a plain reboot", r.Arg)
		}
	case "commit":
		if err = h.l.Commit(slot); err == nil {
			h.committed = slot
		}
	case "bad":
		if err = h.l.MarkBad(slot); err == nil {
			// Nothing may boot it, not even U-Boot's fallback.
			if conf, _ := h.fs.ReadFile(contract.ExtlinuxConf); strings.Contains(string(conf), "LABEL cairn-"+string(slot)+"\n") {
				return fmt.Errorf("slot %s marked bad keeps its label", slot)
			}
		}
	case "trial":
		_, err = h.l.Trial(slot)
	case "default":
		var got contract.Slot
		if got, err = h.l.Default(); err == nil && got != slot {
			err = fmt.Errorf("default is %s", got)
		}
	case "boot", "hang", "kernelhang":
		b, got, err := h.start(f[0] == "kernelhang")
		if err != nil {
			return err
		}
		if got != slot || b.fellBack {
			return fmt.Errorf("booted %s (fell back: %v)", got, b.fellBack)
		}
		if f[0] != "boot" {
			return nil
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
	case errors.Is(err, powercut.ErrCut):
		return err
	case fail && err == nil:
		return errors.New("succeeded, want an error")
	case fail:
		return nil
	}
	return err
}

// checkInvariant checks what every instant must hold once a slot is
// committed: the menu parses; the slot it takes as committed is one of
// committed (the model's, before and after a step that was cut); its
// DEFAULT names a complete slot, which is the committed slot or its armed
// trial; and the committed slot is complete.
func (h *harness) checkInvariant(committed ...contract.Slot) error {
	st, err := h.l.read()
	if err != nil {
		return err
	}
	if !st.hasConf {
		return nil // the builder's first install: nothing boots yet
	}
	if c := st.committed(); !slices.Contains(committed, c) {
		return fmt.Errorf("the ESP says slot %s is committed (DEFAULT %s, flag %+v); it is %v", c, st.conf.Default, st.flag, committed)
	}
	d := st.conf.Default
	if _, err := h.l.complete(st, d); err != nil {
		return fmt.Errorf("DEFAULT names slot %s: %v", d, err)
	}
	if c := st.committed(); c != d {
		if !st.flag.Armed(d) {
			return fmt.Errorf("DEFAULT names slot %s, neither committed (%s) nor armed (flag %+v)", d, c, st.flag)
		}
		if _, err := h.l.complete(st, c); err != nil {
			return fmt.Errorf("the committed slot %s is not complete: %v", c, err)
		}
	}
	return nil
}

// checkLabels boots every slot that has a label in the menu, or its
// stamp, as if DEFAULT named it: a label must never name files that are
// missing or of two installs (U-Boot falls back to any label), and an
// install is done when its stamp is there, so the slot must have its
// label and boot, whole, by then.
func (h *harness) checkLabels(t *testing.T) error {
	t.Helper()
	conf, err := h.fs.ReadFile(contract.ExtlinuxConf)
	if err != nil {
		return nil
	}
	for _, slot := range contract.Slots {
		_, serr := h.fs.ReadFile(stampPath(slot))
		stamped := serr == nil
		labelled := strings.Contains(string(conf), "\nLABEL cairn-"+string(slot)+"\n")
		if !stamped && !labelled {
			continue
		}
		c := cloneFS(t, h.fs)
		// The same length: one edit of the header's DEFAULT line.
		edited := strings.Replace(strings.Replace(string(conf), "DEFAULT cairn-a\n", "DEFAULT cairn-"+string(slot)+"\n", 1), "DEFAULT cairn-b\n", "DEFAULT cairn-"+string(slot)+"\n", 1)
		if err := c.Overwrite(contract.ExtlinuxConf, []byte(edited)); err != nil {
			return err
		}
		hc := newHarness(c, h.env)
		b, err := simBoot(c, h.env)
		if err == nil && b.fellBack {
			err = errors.New("U-Boot fell back to another label")
		}
		if err == nil {
			var got contract.Slot
			if got, err = hc.checkBoot(b); err == nil && got != slot {
				err = fmt.Errorf("booted %s", got)
			}
		}
		if err != nil {
			return fmt.Errorf("slot %s (stamp %v, label %v) does not boot whole as the DEFAULT: %v", slot, stamped, labelled, err)
		}
	}
	return nil
}

func cloneFS(t *testing.T, fsys bootloader.FS) *bootloader.MemFS {
	t.Helper()
	var c bootloader.MemFS
	var walk func(dir string)
	walk = func(dir string) {
		names, err := fsys.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			p := dir + "/" + n
			b, err := fsys.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.WriteFile(p, strings.NewReader(string(b))); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, dir := range []string{"extlinux", "cairn", contract.SlotA.BootDir(), contract.SlotB.BootDir()} {
		walk(dir)
	}
	return &c
}

var envs = map[string]simEnv{"tegra": simTegra, "qemu_arm64": simQEMU}

func TestScenarios(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			for _, kind := range []string{"mem", "dir"} {
				var h *harness
				if kind == "mem" {
					h = newHarness(&bootloader.MemFS{}, simTegra)
				} else {
					h = newHarness(bootloader.DirFS(t.TempDir()), simQEMU)
				}
				for i, step := range sc.steps {
					if err := h.do(step); err != nil {
						t.Fatalf("%s: step %d %q: %v", kind, i, step, err)
					}
					if err := h.checkInvariant(h.committed); err != nil {
						t.Fatalf("%s: after step %d %q: %v", kind, i, step, err)
					}
					if err := h.checkLabels(t); err != nil {
						t.Fatalf("%s: after step %d %q: %v", kind, i, step, err)
					}
					// Default must be what U-Boot boots, without falling back.
					if want, err := h.l.Default(); err == nil {
						b, gerr := simBoot(h.fs, h.env)
						got, _, _ := simCmdline(b.bootargs)
						if gerr != nil || b.fellBack || got != string(want) {
							t.Fatalf("%s: after step %d %q: Default() = %s; the simulated U-Boot boots %s (fell back %v), %v", kind, i, step, want, got, b.fellBack, gerr)
						}
					}
				}
			}
		})
	}
}

// TestPowerCuts cuts the power (agent/bootloader/powercut: a WriteFile
// over an existing file is a removal and a write, as a FAT rename is not
// atomic) after every prefix of every step's writes in every scenario, in
// both U-Boot environments. At the cut, the
// invariant must hold; the next boot (on a copy of the ESP) must boot,
// whole and without U-Boot falling back, a slot that the step started or
// ended with as the default, and Trial must call it a trial exactly when
// the cut left its trial armed. Then the step repeated (the agent's
// retry) and the rest of the scenario must run as without the cut. Every
// overwrite must change one sector at most.
func TestPowerCuts(t *testing.T) {
	total := 0
	for _, sc := range scenarios {
		for name, env := range envs {
			t.Run(sc.name+"/"+name, func(t *testing.T) {
				cuts := 0
				for i, step := range sc.steps {
					before, after, ok := defaults(t, sc.steps, i)
					model := committedAround(t, sc.steps, i)
					if !ok {
						continue // nothing bootable yet: the builder's steps
					}
					for k := 0; ; k++ {
						esp := &bootloader.MemFS{}
						h := newHarness(esp, env)
						replay(t, h, sc.steps[:i])
						// Every overwrite must change one sector at most:
						// the package's layout rests on it.
						p := &powercut.Power{Left: k}
						cut := newHarness(&powercut.FS{Inner: esp, Power: p, TornRename: true, OnOverwrite: func(name string, old, new []byte) {
							if n := changedSectors(old, new); n > 1 {
								t.Errorf("step %d %q: an overwrite of %s changes %d sectors", i, step, name, n)
							}
						}}, env)
						err := cut.do(step)
						if err == nil {
							break
						}
						if !errors.Is(err, powercut.ErrCut) {
							t.Fatalf("step %d %q with %d writes: %v", i, step, k, err)
						}
						cuts++
						where := fmt.Sprintf("cut in step %d %q after %q", i, step, p.Log)
						if err := h.checkInvariant(model[:]...); err != nil {
							t.Fatalf("%s: %v", where, err)
						}
						if err := h.checkLabels(t); err != nil {
							t.Fatalf("%s: %v", where, err)
						}
						checkNextBoot(t, where, esp, env, before, after)
						if strings.Contains(step, "boot") || strings.HasPrefix(step, "hang") {
							continue // the boot itself was cut: the next boot is the check above
						}
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

// checkNextBoot boots a copy of the ESP after a cut.
func checkNextBoot(t *testing.T, where string, esp *bootloader.MemFS, env simEnv, before, after contract.Slot) {
	t.Helper()
	c := newHarness(cloneFS(t, esp), env)
	st, err := c.l.read()
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	wantTrial := st.flag.Armed(st.conf.Default)
	b, slot, err := c.start(false)
	switch {
	case err != nil:
		t.Fatalf("%s: the next boot: %v", where, err)
	case b.fellBack:
		t.Fatalf("%s: the next boot fell back to %s", where, slot)
	case slot != before && slot != after:
		t.Fatalf("%s: the next boot boots %s; want %s or %s", where, slot, before, after)
	}
	if trial, err := c.l.Trial(slot); err != nil || trial != wantTrial {
		t.Fatalf("%s: the next boot, of %s: Trial = %v, %v; want %v", where, slot, trial, err, wantTrial)
	}
}

// defaults are the slots Default names before and after step i of steps,
// run without cuts; ok is false if nothing was bootable before it.
func defaults(t *testing.T, steps []string, i int) (before, after contract.Slot, ok bool) {
	t.Helper()
	h := newHarness(&bootloader.MemFS{}, simTegra)
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

// committedAround is the model's committed slot before and after step i.
func committedAround(t *testing.T, steps []string, i int) [2]contract.Slot {
	t.Helper()
	h := newHarness(&bootloader.MemFS{}, simTegra)
	replay(t, h, steps[:i])
	before := h.committed
	replay(t, h, steps[i:i+1])
	return [2]contract.Slot{before, h.committed}
}

func replay(t *testing.T, h *harness, steps []string) {
	t.Helper()
	for i, s := range steps {
		if err := h.do(s); err != nil {
			t.Fatalf("step %d %q: %v", i, s, err)
		}
	}
}
