package extlinux

import (
	"bytes"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent/contract"
)

func testConf() Conf {
	return Conf{Default: contract.SlotB, Labels: map[contract.Slot]Label{
		contract.SlotA: {Title: "Cairn 1.0 (slot A)", Version: "1.0", Kernel: "/cairn/a/vmlinuz", Initrd: "/cairn/a/initrd", FDT: "/cairn/a/tegra210-p3450-0000.dtb", Append: "console=ttyS0,115200n8 cairn.extlinux cairn.slot=a"},
		contract.SlotB: {Kernel: "/cairn/b/vmlinuz", Append: "cairn.extlinux cairn.slot=b"},
	}}
}

// TestConfRender pins what U-Boot reads: the lines, each part in its
// sector, the padding.
func TestConfRender(t *testing.T) {
	b, err := testConf().Render()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != contract.ExtlinuxConfSize {
		t.Fatalf("%d bytes, want %d", len(b), contract.ExtlinuxConfSize)
	}
	sector := func(i int) string {
		return string(b[i*contract.ExtlinuxSector : (i+1)*contract.ExtlinuxSector])
	}
	for i, want := range []string{
		headerText + "TIMEOUT 50\nDEFAULT cairn-b\n",
		"LABEL cairn-a\n  # title: Cairn 1.0 (slot A)\n  # version: 1.0\n  LINUX /cairn/a/vmlinuz\n  INITRD /cairn/a/initrd\n  FDT /cairn/a/tegra210-p3450-0000.dtb\n  APPEND console=ttyS0,115200n8 cairn.extlinux cairn.slot=a\n",
		"LABEL cairn-b\n  LINUX /cairn/b/vmlinuz\n  APPEND cairn.extlinux cairn.slot=b\n",
	} {
		s := sector(i)
		if !strings.HasPrefix(s, want) {
			t.Errorf("sector %d:\n%s\nwant it to start with\n%s", i, s, want)
		}
		rest := strings.TrimPrefix(s, want)
		for _, line := range strings.SplitAfter(rest, "\n") {
			if line != "" && (!strings.HasPrefix(line, "#") || !strings.HasSuffix(line, "\n") || len(line) > padLine) {
				t.Errorf("sector %d: padding line %q", i, line)
			}
		}
		if !strings.HasSuffix(s, "\n") {
			t.Errorf("sector %d does not end a line: a line would span two sectors", i)
		}
	}
	empty := testConf().withLabel(contract.SlotA, nil)
	eb, err := empty.Render()
	if err != nil {
		t.Fatal(err)
	}
	if s := string(eb[contract.ExtlinuxSector : 2*contract.ExtlinuxSector]); strings.Contains(s, "LABEL") || strings.Trim(s, "#\n") == s {
		t.Errorf("a slot without a label: sector\n%s", s)
	}
	for _, line := range strings.Split(string(b)+string(eb), "\n") {
		if f := strings.Fields(line); len(f) > 0 && (strings.EqualFold(f[0], "menu") || strings.EqualFold(f[0], "include")) {
			t.Errorf("the menu holds %q, which Cairn never writes (see the package doc)", line)
		}
	}
}

func TestParseConf(t *testing.T) {
	good, _ := testConf().Render()
	got, err := ParseConf(good)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := got.Render(); !bytes.Equal(r, good) || got.Default != contract.SlotB || got.Labels[contract.SlotA].FDT == "" {
		t.Errorf("ParseConf round trip: %+v", got)
	}
	edit := func(old, new string) []byte {
		return []byte(strings.Replace(string(good), old, new, 1))
	}
	for _, tt := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "0 bytes, not the 1536"},
		{"short", good[:1000], "1000 bytes"},
		{"a NUL", edit("LINUX", "LINU\x00"), "byte"},
		{"a tab", edit("  LINUX", " \tLINUX"), "not printable"},
		{"no DEFAULT", edit("DEFAULT cairn-b", "DEFAULTXcairn-b"), "no DEFAULT line"},
		{"DEFAULT of no slot", edit("DEFAULT cairn-b", "DEFAULT cairn-c"), `line 6: "DEFAULT cairn-c"`},
		{"the label of the other slot", edit("LABEL cairn-a", "LABEL cairn-b"), "line 11:"},
		{"a line before LABEL", edit("LABEL cairn-a\n", "  LINUX x\n###\n"), "before the LABEL line"},
		{"a keyword Cairn does not write", edit("  # version: 1.0", "  FDTDIR /cairn/"), "not a line Cairn writes"},
		{"a line twice", edit("  # version: 1.0", "  LINUX /cairn/a"), "given twice"},
		{"lowercase", edit("  APPEND console", "  append console"), "not a line Cairn writes"},
		{"padding edited", edit("##\n", "# \n"), "not laid out as Cairn writes it"},
		{"a MENU line in the header", edit("TIMEOUT 50", "MENU TITLE"), "not laid out"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseConf(tt.data); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseConf: %v; want an error saying %q", err, tt.want)
			}
		})
	}
}

func TestRenderLabelTooLong(t *testing.T) {
	l := testConf().Labels[contract.SlotA]
	l.Append = strings.Repeat("x", 400)
	if _, err := RenderLabel(contract.SlotA, l); err == nil || !strings.Contains(err.Error(), "its command line is 400 bytes") {
		t.Errorf("RenderLabel of a long command line: %v", err)
	}
}

func TestParseLabel(t *testing.T) {
	l := testConf().Labels[contract.SlotA]
	b, err := RenderLabel(contract.SlotA, l)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ParseLabel(contract.SlotA, b); err != nil || got != l {
		t.Errorf("ParseLabel = %+v, %v", got, err)
	}
	if _, err := ParseLabel(contract.SlotB, b); err == nil {
		t.Error("slot a's label parsed as slot b's")
	}
	if _, err := ParseLabel(contract.SlotA, b[:100]); err == nil {
		t.Error("a short label parsed")
	}
	empty, _ := renderSector(contract.SlotA, Label{}, false)
	if _, err := ParseLabel(contract.SlotA, empty); err == nil || !strings.Contains(err.Error(), "no label") {
		t.Errorf("an empty sector as a stamp: %v", err)
	}
}

func TestFlag(t *testing.T) {
	for _, f := range []Flag{{}, {Slot: contract.SlotA}, {Slot: contract.SlotB, Booted: true}} {
		b := f.Render()
		if len(b) != contract.ExtlinuxTrialSize {
			t.Errorf("%+v: %d bytes", f, len(b))
		}
		if got, err := ParseFlag(b); err != nil || got != f {
			t.Errorf("ParseFlag(Render(%+v)) = %+v, %v", f, got, err)
		}
	}
	if !(Flag{Slot: contract.SlotB}).Armed(contract.SlotB) || (Flag{Slot: contract.SlotB, Booted: true}).Armed(contract.SlotB) || (Flag{Slot: contract.SlotB}).Armed(contract.SlotA) {
		t.Error("Armed")
	}
	good := Flag{Slot: contract.SlotB}.Render()
	edit := func(old, new string) []byte { return []byte(strings.Replace(string(good), old, new, 1)) }
	for _, tt := range []struct {
		name string
		data []byte
		want string
	}{
		{"short", good[:10], "10 bytes"},
		{"garbled", edit("trial=b", "tr\x01al=b"), "not printable"},
		{"no trial line", edit("trial=b", "#rial=b"), "no trial= line"},
		{"no such slot", edit("trial=b", "trial=c"), "trial=c"},
		{"unknown key", edit("state=armed", "stage=armed"), `"stage=armed" is not a line`},
		{"twice", edit("state=armed", "trial=a####"), `"trial=a####" is not a line`},
		{"unknown state", edit("state=armed", "state=armex"), "not laid out"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseFlag(tt.data); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseFlag: %v; want an error saying %q", err, tt.want)
			}
		})
	}
}

// The parsers of what is read back from the ESP take any bytes: no panic,
// and what they accept renders back to the same bytes.

func FuzzParseConf(f *testing.F) {
	good, _ := testConf().Render()
	f.Add(good)
	empty, _ := Conf{Default: contract.SlotA}.Render()
	f.Add(empty)
	f.Add([]byte("DEFAULT cairn-a\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConf(b)
		if err != nil {
			return
		}
		if r, err := c.Render(); err != nil || !bytes.Equal(r, b) {
			t.Fatalf("accepted %q, which renders as %q, %v", b, r, err)
		}
	})
}

func FuzzParseFlag(f *testing.F) {
	for _, fl := range []Flag{{}, {Slot: contract.SlotA}, {Slot: contract.SlotB, Booted: true}} {
		f.Add(fl.Render())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fl, err := ParseFlag(b)
		if err != nil {
			return
		}
		if !bytes.Equal(fl.Render(), b) {
			t.Fatalf("accepted %q as %+v", b, fl)
		}
	})
}

func FuzzParseLabel(f *testing.F) {
	b, _ := RenderLabel(contract.SlotA, testConf().Labels[contract.SlotA])
	f.Add(b, true)
	b, _ = RenderLabel(contract.SlotB, testConf().Labels[contract.SlotB])
	f.Add(b, false)
	f.Fuzz(func(t *testing.T, b []byte, a bool) {
		slot := contract.SlotB
		if a {
			slot = contract.SlotA
		}
		l, err := ParseLabel(slot, b)
		if err != nil {
			return
		}
		if r, err := RenderLabel(slot, l); err != nil || !bytes.Equal(r, b) {
			t.Fatalf("accepted %q, which renders as %q, %v", b, r, err)
		}
	})
}
