package extlinux

import (
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/contract"
)

// upgraded is an ESP with a committed, b installed and, with arm, armed.
func upgraded(t *testing.T, arm bool) *harness {
	t.Helper()
	h := newHarness(&bootloader.MemFS{}, simTegra)
	steps := []string{"install a 1.0", "commit a", "install b 2.0"}
	if arm {
		steps = append(steps, "arm b")
	}
	replay(t, h, steps)
	return h
}

func TestInstallBadInput(t *testing.T) {
	files := func(mod func(*bootloader.BootFiles)) bootloader.BootFiles {
		f := testFiles(contract.SlotB, "2.0")
		mod(&f)
		return f
	}
	board := func(name string) func(*bootloader.BootFiles) {
		return func(f *bootloader.BootFiles) {
			f.Files = append(f.Files, bootloader.File{Name: name, Data: strings.NewReader("x")})
		}
	}
	cmdline := func(args ...string) func(*bootloader.BootFiles) {
		return func(f *bootloader.BootFiles) { f.Cmdline = args }
	}
	for _, tt := range []struct {
		name  string
		files bootloader.BootFiles
		want  string
	}{
		{"no kernel", files(func(f *bootloader.BootFiles) { f.Kernel = nil }), "no kernel"},
		{"slot on the command line", files(cmdline("cairn.slot=a")), "already names a slot"},
		{"the extlinux flag on the command line", files(cmdline("cairn.extlinux")), "Install adds it"},
		{"a U-Boot variable", files(cmdline("root=${root}")), "U-Boot's APPEND expands"},
		{"a quote", files(cmdline("x='y'")), "strips"},
		{"a backslash", files(cmdline(`x=\y`)), "strips"},
		{"two parameters in one", files(cmdline("quiet splash")), "not one parameter"},
		{"a newline", files(cmdline("quiet\ninit=/bin/sh")), "the byte 0x0a"},
		{"not ASCII", files(cmdline("x=é")), "printable ASCII"},
		{"a newline in the version", files(func(f *bootloader.BootFiles) { f.Version = "2\nslot=a" }), "printable ASCII"},
		{"a command line too long for the sector", files(cmdline(strings.Repeat("x", 450))), "shorten the kernel command line"},
		{"two device trees", files(board("other.dtb")), "both device trees"},
		{"the kernel's name, other case", files(board("VMLINUZ")), "Install writes itself"},
		{"the stamp's name", files(board("label.conf")), "Install writes itself"},
		{"one file twice on FAT", files(board("Tegra210-P3450-0000.DTB")), "one file on FAT"},
		{"a dot file", files(board("x/.y")), "dot-named"},
		{"an absolute path", files(board("/x.dtb")), "not a relative"},
		{"no content", files(func(f *bootloader.BootFiles) { f.Files = append(f.Files, bootloader.File{Name: "x"}) }), "no content"},
		{"no device tree where the committed slot has one", files(func(f *bootloader.BootFiles) { f.Files = nil }), "carry none"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(&bootloader.MemFS{}, simTegra)
			replay(t, h, []string{"install a 1.0", "commit a"})
			before, _ := h.fs.ReadFile(contract.ExtlinuxConf)
			if err := h.l.Install(contract.SlotB, tt.files); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Install: %v; want an error saying %q", err, tt.want)
			}
			if names, _ := h.fs.ReadDir(contract.SlotB.BootDir()); len(names) > 0 {
				t.Errorf("a refused Install wrote %v", names)
			}
			if after, _ := h.fs.ReadFile(contract.ExtlinuxConf); string(after) != string(before) {
				t.Error("a refused Install changed the menu")
			}
		})
	}
}

// TestInstallRemovesOldFiles: a device tree of an earlier install, under
// another name, does not stay behind.
func TestInstallRemovesOldFiles(t *testing.T) {
	h := upgraded(t, false)
	f := testFiles(contract.SlotB, "2.1")
	f.Files[0].Name = "renamed.dtb"
	if err := h.l.Install(contract.SlotB, f); err != nil {
		t.Fatal(err)
	}
	names, _ := h.fs.ReadDir(contract.SlotB.BootDir())
	if strings.Join(names, " ") != "initrd label.conf renamed.dtb vmlinuz" {
		t.Errorf("slot b's directory holds %v", names)
	}
	if err := h.do("arm b"); err != nil {
		t.Fatal(err)
	}
}

// TestTrialRevertsWhenInitDidNot: an initramfs whose cairn-init did not
// set the DEFAULT back (one from before the hook) still ends up with the
// committed slot as U-Boot's default once the agent asks Trial.
func TestTrialRevertsWhenInitDidNot(t *testing.T) {
	h := upgraded(t, true)
	if err := h.do("kernelhang b"); err != nil { // U-Boot boots b; nothing reverts
		t.Fatal(err)
	}
	if got, err := h.l.Trial(contract.SlotB); err != nil || !got {
		t.Fatalf("Trial(b) = %v, %v; want a trial", got, err)
	}
	if d, _ := h.l.Default(); d != contract.SlotA {
		t.Errorf("after Trial, U-Boot's default is %s, want a", d)
	}
	replay(t, h, []string{"commit b", "boot b good"})
}

// TestRevertKeepsATrialWhenTheCommittedSlotIsBroken: better the trial
// than a DEFAULT naming a slot that cannot boot.
func TestRevertKeepsATrialWhenTheCommittedSlotIsBroken(t *testing.T) {
	h := upgraded(t, true)
	if err := h.fs.Remove(contract.SlotA.BootDir() + "/" + contract.InitrdFile); err != nil {
		t.Fatal(err)
	}
	r, err := RevertTrial(h.fs, contract.SlotB, nil)
	if err == nil || !strings.Contains(err.Error(), "the trial stays U-Boot's default") || r != (Reverted{}) {
		t.Fatalf("RevertTrial = %+v, %v; want the trial left the default", r, err)
	}
	if d, _ := h.l.Default(); d != contract.SlotB {
		t.Errorf("default %s, want b", d)
	}
}

func TestRevertTrial(t *testing.T) {
	h := upgraded(t, true)
	r, err := RevertTrial(h.fs, contract.SlotB, nil)
	if err != nil || r != (Reverted{Trial: contract.SlotB, Default: contract.SlotA}) {
		t.Fatalf("RevertTrial = %+v, %v", r, err)
	}
	again, err := RevertTrial(h.fs, contract.SlotB, nil)
	if err != nil || again != (Reverted{}) {
		t.Errorf("RevertTrial again = %+v, %v; want nothing done", again, err)
	}
	if got, err := h.l.Trial(contract.SlotB); err != nil || !got {
		t.Errorf("Trial(b) = %v, %v", got, err)
	}
	// U-Boot fell back to a (b's kernel would not load): no trial ran.
	h = upgraded(t, true)
	if r, err := RevertTrial(h.fs, contract.SlotA, nil); err != nil || r.Default != contract.SlotA {
		t.Fatalf("RevertTrial running a = %+v, %v", r, err)
	}
	if got, err := h.l.Trial(contract.SlotA); err != nil || got {
		t.Errorf("Trial(a) = %v, %v; want no trial", got, err)
	}
	if _, err := RevertTrial(&bootloader.MemFS{}, contract.SlotA, nil); err == nil {
		t.Error("RevertTrial on an ESP without a menu: no error")
	}
}

// TestCompleteRefusesAMismatchedLabel: the menu's label for a slot must be
// the one its install wrote, or the slot is not armed or committed.
func TestCompleteRefusesAMismatchedLabel(t *testing.T) {
	h := upgraded(t, false)
	b, _ := h.fs.ReadFile(contract.ExtlinuxConf)
	edited := strings.Replace(string(b), "cairn.test=2.0", "cairn.test=9.9", 1)
	if err := h.fs.Overwrite(contract.ExtlinuxConf, []byte(edited)); err != nil {
		t.Fatal(err)
	}
	for _, step := range []string{"arm b", "commit b"} {
		if err := h.do(step); err == nil || !strings.Contains(err.Error(), "not the one its install wrote") {
			t.Errorf("%s with an edited label: %v", step, err)
		}
	}
}

func TestTrialOfASlotNeitherDefaultNorTrial(t *testing.T) {
	h := upgraded(t, false)
	// U-Boot fell back to b, say, or b was picked at the console.
	if got, err := h.l.Trial(contract.SlotB); err != nil || got {
		t.Errorf("Trial(b), complete, not the default: %v, %v; want no trial", got, err)
	}
	replay(t, h, []string{"bad b"})
	if _, err := h.l.Trial(contract.SlotB); err == nil || !strings.Contains(err.Error(), "marked bad or is being installed") {
		t.Errorf("Trial(b) after MarkBad: %v", err)
	}
}

func TestProbe(t *testing.T) {
	esp, err := NewESP(testFiles(contract.SlotA, "1.0"))
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := Probe(esp); !ok || err != nil {
		t.Errorf("Probe of a fresh ESP = %v, %v", ok, err)
	}
	if ok, err := Probe(&bootloader.MemFS{}); ok || err != nil {
		t.Errorf("Probe of an ESP without extlinux.conf (systemd-boot's) = %v, %v", ok, err)
	}
	if err := esp.Overwrite(contract.ExtlinuxConf, make([]byte, contract.ExtlinuxConfSize)); err != nil {
		t.Fatal(err)
	}
	if ok, err := Probe(esp); ok || err == nil {
		t.Errorf("Probe of a damaged menu = %v, %v; want an error", ok, err)
	}
}

// TestNewESP: a fresh image's ESP holds the menu, the flag and slot a's
// files, nothing of slot b; U-Boot boots slot a from it.
func TestNewESP(t *testing.T) {
	esp, err := NewESP(testFiles(contract.SlotA, "1.0"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	if err := esp.Walk(func(name string, data []byte) error {
		names = append(names, name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := "cairn/a/initrd cairn/a/label.conf cairn/a/tegra210-p3450-0000.dtb cairn/a/vmlinuz cairn/trial.txt extlinux/extlinux.conf"
	if strings.Join(names, " ") != want {
		t.Errorf("a fresh ESP holds %v, want %s", names, want)
	}
	f, err := esp.ReadFile(contract.ExtlinuxTrialFile)
	if err != nil {
		t.Fatal(err)
	}
	if fl, err := ParseFlag(f); err != nil || fl != (Flag{}) {
		t.Errorf("the fresh flag: %+v, %v", fl, err)
	}
	h := newHarness(esp, simTegra)
	replay(t, h, []string{"default a", "boot a good", "install b 2.0", "arm b", "boot b trial", "commit b", "boot b good"})
}
