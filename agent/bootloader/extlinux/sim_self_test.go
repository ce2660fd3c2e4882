package extlinux

import (
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/contract"
)

// TestSimUBoot checks the simulated U-Boot on hand-written files, so that
// the scenarios' judge is judged too; each case is a behaviour read in
// boot/pxe_utils.c.
func TestSimUBoot(t *testing.T) {
	files := map[string]string{
		"k/a": "kernel a", "k/b": "kernel b", "i/a": "initrd a", "i/b": "initrd b", "d/a.dtb": "dtb a",
		"extlinux/rel": "relative kernel",
	}
	const ab = "LABEL a\n LINUX /k/a\n INITRD /i/a\n FDT /d/a.dtb\n APPEND cairn.slot=a\nLABEL b\n LINUX /k/b\n INITRD /i/b\n APPEND cairn.slot=b\n"
	for _, tt := range []struct {
		name, conf string
		env        simEnv
		want       string // the kernel booted; "" a failure
		fellBack   bool
		fdt        string
	}{
		{name: "DEFAULT", conf: "DEFAULT b\n" + ab, env: simTegra, want: "kernel b"},
		{name: "the last DEFAULT wins", conf: "DEFAULT a\nDEFAULT b\n" + ab, env: simTegra, want: "kernel b"},
		{name: "keywords ignore case, blanks and comments", conf: "# x\n\tdefault b # not a comment: part of the name\n" + ab, env: simTegra, want: "kernel a", fellBack: true, fdt: "dtb a"},
		{name: "uppercase keywords", conf: "dEfAuLt b\n" + strings.ToUpper(ab[:5]) + ab[5:], env: simTegra, want: "kernel b"},
		{name: "FDT loaded on Tegra", conf: "DEFAULT a\n" + ab, env: simTegra, want: "kernel a", fdt: "dtb a"},
		{name: "FDT ignored without fdt_addr_r", conf: "DEFAULT a\n" + strings.Replace(ab, "/d/a.dtb", "/d/missing.dtb", 1), env: simQEMU, want: "kernel a"},
		{name: "a missing FDT skips the label on Tegra", conf: "DEFAULT a\n" + strings.Replace(ab, "/d/a.dtb", "/d/missing.dtb", 1), env: simTegra, want: "kernel b", fellBack: true},
		{name: "a missing kernel: the other labels in order", conf: "DEFAULT a\n" + strings.Replace(ab, "/k/a", "/k/x", 1), env: simTegra, want: "kernel b", fellBack: true},
		{name: "a missing initrd likewise", conf: "DEFAULT b\n" + strings.Replace(ab, "/i/b", "/i/x", 1), env: simTegra, want: "kernel a", fellBack: true, fdt: "dtb a"},
		{name: "DEFAULT naming no label: the first", conf: "DEFAULT c\n" + ab, env: simTegra, want: "kernel a", fellBack: true, fdt: "dtb a"},
		{name: "no DEFAULT: the first", conf: ab, env: simTegra, want: "kernel a", fellBack: true, fdt: "dtb a"},
		{name: "MENU DEFAULT when no DEFAULT came before", conf: strings.Replace(ab, "LINUX /k/b", "MENU DEFAULT\n LINUX /k/b", 1), env: simTegra, want: "kernel b"},
		{name: "MENU DEFAULT after DEFAULT does nothing", conf: "DEFAULT a\n" + strings.Replace(ab, "LINUX /k/b", "MENU DEFAULT\n LINUX /k/b", 1), env: simTegra, want: "kernel a", fdt: "dtb a"},
		{name: "a top-level MENU asks, TIMEOUT 0 waits forever", conf: "MENU TITLE x\nDEFAULT a\n" + ab, env: simTegra},
		{name: "... with a TIMEOUT it boots DEFAULT", conf: "MENU TITLE x\nTIMEOUT 10\nDEFAULT a\n" + ab, env: simTegra, want: "kernel a", fdt: "dtb a"},
		{name: "a missing INCLUDE fails the file", conf: "INCLUDE /nothing.conf\nDEFAULT a\n" + ab, env: simTegra},
		{name: "a stray LINUX after a label changes it", conf: "DEFAULT a\n" + strings.Replace(ab, "LABEL b\n", "LINUX /k/b\nLABEL b\n", 1), env: simTegra, want: "kernel b", fdt: "dtb a"},
		{name: "a second INITRD ends the label", conf: "DEFAULT a\nLABEL a\n INITRD /i/a\n INITRD /i/b\n LINUX /k/b\n APPEND x\nLABEL b\n LINUX /k/a\n", env: simQEMU, want: "kernel a", fellBack: true},
		{name: "relative paths are in extlinux/", conf: "DEFAULT r\nLABEL r\n LINUX rel\n", env: simTegra, want: "relative kernel"},
		{name: "a NUL ends the file", conf: "DEFAULT a\n\x00" + ab, env: simTegra},
		{name: "DEFAULT without a name fails the file", conf: "DEFAULT # a\n" + ab, env: simTegra},
		{name: "initrd= in APPEND", conf: "DEFAULT a\nLABEL a\n LINUX /k/a\n APPEND initrd=/i/b rw\n", env: simTegra, want: "kernel a"},
		{name: "$ in APPEND is expanded", conf: "DEFAULT a\nLABEL a\n LINUX /k/a\n APPEND ${bootargs}\n", env: simTegra},
		{name: "511 bytes of bootargs on qemu_arm64", conf: "DEFAULT a\nLABEL a\n LINUX /k/a\n APPEND " + strings.Repeat("x", 511) + "\n", env: simQEMU, want: "kernel a"},
		{name: "bootargs overflow on qemu_arm64", conf: "DEFAULT a\nLABEL a\n LINUX /k/a\n APPEND " + strings.Repeat("x", 512) + "\n", env: simQEMU},
		{name: "... which Tegra holds", conf: "DEFAULT a\nLABEL a\n LINUX /k/a\n APPEND " + strings.Repeat("x", 512) + "\n", env: simTegra, want: "kernel a"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := &bootloader.MemFS{}
			for k, v := range files {
				if err := m.WriteFile(k, strings.NewReader(v)); err != nil {
					t.Fatal(err)
				}
			}
			if err := m.WriteFile("extlinux/extlinux.conf", strings.NewReader(tt.conf)); err != nil {
				t.Fatal(err)
			}
			b, err := simBoot(m, tt.env)
			if tt.want == "" {
				if err == nil {
					t.Errorf("booted %+v; want nothing to boot", b)
				}
				return
			}
			if err != nil || b.kernel != tt.want || b.fellBack != tt.fellBack || b.fdt != tt.fdt {
				t.Errorf("simBoot = %+v, %v; want kernel %q, fell back %v, fdt %q", b, err, tt.want, tt.fellBack, tt.fdt)
			}
		})
	}
	if _, err := simBoot(&bootloader.MemFS{}, simTegra); err == nil {
		t.Error("booted an ESP without extlinux.conf")
	}
}

// TestSimReadsRender: the simulated U-Boot reads every menu Render writes
// as this package means it, with an empty sector on either side.
func TestSimReadsRender(t *testing.T) {
	for _, def := range contract.Slots {
		for _, drop := range []contract.Slot{"", contract.SlotA, contract.SlotB} {
			c := testConf().withDefault(def)
			if drop != "" {
				c = c.withLabel(drop, nil)
			}
			b, err := c.Render()
			if err != nil {
				t.Fatal(err)
			}
			p := &simParser{s: cString(b), dir: "extlinux/", nest: 1}
			m := &simMenu{}
			if err := p.top(m); err != nil {
				t.Fatal(err)
			}
			if m.prompt || m.defaultLabel != labelName(def) || m.timeout != timeout {
				t.Errorf("DEFAULT %s, dropped %q: prompt %v, default %q, timeout %d", def, drop, m.prompt, m.defaultLabel, m.timeout)
			}
			var names []string
			for _, l := range m.labels {
				names = append(names, l.name)
				want := c.Labels[contract.Slot(strings.TrimPrefix(l.name, "cairn-"))]
				if l.kernel != want.Kernel || l.initrd != want.Initrd || l.fdt != want.FDT || l.appendLine != want.Append {
					t.Errorf("label %s read as %+v, written as %+v", l.name, l, want)
				}
			}
			if len(names) != len(c.Labels) {
				t.Errorf("DEFAULT %s, dropped %q: U-Boot reads labels %v", def, drop, names)
			}
		}
	}
}
