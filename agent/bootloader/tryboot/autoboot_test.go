package tryboot

import (
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/bootloader/tryboot/pifirmware"
	"github.com/cairn-edge/cairn/agent/contract"
)

// docExample is the Raspberry Pi documentation's autoboot.txt
// (config_txt/autoboot.adoc), without padding.
const docExample = "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n"

func TestAutobootRender(t *testing.T) {
	for _, ab := range []Autoboot{
		{contract.SlotA, contract.SlotB},
		{contract.SlotB, contract.SlotA},
		{contract.SlotA, contract.SlotA},
	} {
		b := ab.Render()
		if len(b) != contract.RPiAutobootSize {
			t.Errorf("%+v: %d bytes, want %d", ab, len(b), contract.RPiAutobootSize)
		}
		for i, line := range strings.Split(string(b), "\n") {
			if len(line) > 78 {
				t.Errorf("%+v: line %d has %d characters, past older firmware's limit of 78", ab, i+1, len(line))
			}
		}
		if got, err := ParseAutoboot(b); err != nil || got != ab {
			t.Errorf("ParseAutoboot(Render(%+v)) = %+v, %v", ab, got, err)
		}
	}
	if got := string(Autoboot{contract.SlotA, contract.SlotB}.Render()); !strings.HasPrefix(got, docExample) {
		t.Errorf("Render starts %q, want the documentation's example %q", got[:len(docExample)], docExample)
	}
}

func TestParseAutoboot(t *testing.T) {
	good := docExample
	for _, tt := range []struct {
		name, in string
		want     Autoboot // zero: an error saying wantErr
		wantErr  string
	}{
		{"the documentation's example", good, Autoboot{contract.SlotA, contract.SlotB}, ""},
		{"committed b", "[all]\ntryboot_a_b=1\nboot_partition=3\n[tryboot]\nboot_partition=2\n", Autoboot{contract.SlotB, contract.SlotA}, ""},
		{"comments, blank lines, no final newline", "# x\n[all]\n\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\n# y\nboot_partition=3", Autoboot{contract.SlotA, contract.SlotB}, ""},
		{"empty", "", Autoboot{}, "no tryboot_a_b"},
		{"too long", good + strings.Repeat("#", 512) + "\n", Autoboot{}, "more than the 512"},
		{"zeroed sector", "[all]\n\x00\x00\x00", Autoboot{}, "not printable"},
		{"CRLF", strings.ReplaceAll(good, "\n", "\r\n"), Autoboot{}, "not printable"},
		{"no [all]", "tryboot_a_b=1\n", Autoboot{}, "before the [all]"},
		{"a model filter", "[all]\ntryboot_a_b=1\nboot_partition=2\n[pi4]\nboot_partition=3\n", Autoboot{}, "section \"[pi4]\""},
		{"[tryboot] first", "[tryboot]\nboot_partition=3\n[all]\n", Autoboot{}, "section \"[tryboot]\""},
		{"tryboot_a_b=0", strings.Replace(good, "tryboot_a_b=1", "tryboot_a_b=0", 1), Autoboot{}, "tryboot_a_b=1"},
		{"no tryboot_a_b", strings.Replace(good, "tryboot_a_b=1\n", "", 1), Autoboot{}, "no tryboot_a_b"},
		{"no [tryboot]", "[all]\ntryboot_a_b=1\nboot_partition=2\n", Autoboot{}, "no boot_partition in [tryboot]"},
		{"no default", "[all]\ntryboot_a_b=1\n[tryboot]\nboot_partition=3\n", Autoboot{}, "no boot_partition in [all]"},
		{"partition 1", strings.Replace(good, "boot_partition=2", "boot_partition=1", 1), Autoboot{}, "no slot's boot partition"},
		{"partition 0", strings.Replace(good, "boot_partition=2", "boot_partition=0", 1), Autoboot{}, "no slot's boot partition"},
		{"not a number", strings.Replace(good, "boot_partition=2", "boot_partition=two", 1), Autoboot{}, "not a partition number"},
		{"a space", strings.Replace(good, "boot_partition=2", "boot_partition= 2", 1), Autoboot{}, "not a partition number"},
		{"an indent", strings.Replace(good, "boot_partition=2", " boot_partition=2", 1), Autoboot{}, "not a key Cairn writes"},
		{"twice", strings.Replace(good, "boot_partition=2", "boot_partition=2\nboot_partition=3", 1), Autoboot{}, "set again"},
		{"another key", strings.Replace(good, "tryboot_a_b=1", "tryboot_a_b=1\nboot_delay=1", 1), Autoboot{}, "not a key Cairn writes"},
		{"no =", strings.Replace(good, "tryboot_a_b=1", "tryboot_a_b", 1), Autoboot{}, "not key=value"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAutoboot([]byte(tt.in))
			if tt.wantErr == "" {
				if err != nil || got != tt.want {
					t.Errorf("ParseAutoboot = %+v, %v; want %+v", got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "autoboot.txt") {
				t.Errorf("ParseAutoboot = %+v, %v; want an error naming autoboot.txt and saying %q", got, err, tt.wantErr)
			}
		})
	}
}

func TestDefaultNamesTheFile(t *testing.T) {
	auto, boot := memCard()
	l, err := New(auto, fsMap(boot), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Default(); err == nil || !strings.Contains(err.Error(), "no autoboot.txt") {
		t.Errorf("Default on an empty card: %v", err)
	}
	if err := auto.WriteFile("autoboot.txt", strings.NewReader("[all]\nboot_partition=2\n\x00\x00")); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Default(); err == nil || !strings.Contains(err.Error(), "CAIRN-AUTO's autoboot.txt") {
		t.Errorf("Default with a damaged autoboot.txt: %v", err)
	}
	// Parsed, but of another size than Cairn's: Commit must not replace it.
	if err := auto.WriteFile("autoboot.txt", strings.NewReader(docExample)); err != nil {
		t.Fatal(err)
	}
	if got, err := l.Default(); err != nil || got != contract.SlotA {
		t.Errorf("Default with the documentation's autoboot.txt: %v, %v", got, err)
	}
	if err := l.Install(contract.SlotB, testFiles(contract.SlotB, "2.0")); err == nil {
		t.Error("Install(b) with slot a not installed: no error")
	}
	if err := boot[contract.SlotA].WriteFile(contract.RPiStampFile, strings.NewReader(string(stamp{contract.SlotA, "1.0"}.render()))); err != nil {
		t.Fatal(err)
	}
	if err := l.Install(contract.SlotB, testFiles(contract.SlotB, "2.0")); err != nil {
		t.Fatal(err)
	}
	if err := l.Commit(contract.SlotB); err == nil || !strings.Contains(err.Error(), "not 512") {
		t.Errorf("Commit over a %d-byte autoboot.txt: %v; want a refusal", len(docExample), err)
	}
	if b, _ := auto.ReadFile("autoboot.txt"); string(b) != docExample {
		t.Errorf("a refused Commit changed autoboot.txt to %q", b)
	}
}

func TestNew(t *testing.T) {
	auto, boot := memCard()
	if _, err := New(auto, map[contract.Slot]bootloader.FS{contract.SlotA: boot[contract.SlotA]}, nil, nil); err == nil {
		t.Error("New without slot b's boot partition: no error")
	}
	if _, err := New(nil, fsMap(boot), nil, nil); err == nil {
		t.Error("New without CAIRN-AUTO: no error")
	}
	m := fsMap(boot)
	m["c"] = &bootloader.MemFS{}
	if _, err := New(auto, m, nil, nil); err == nil {
		t.Error("New with a third slot: no error")
	}
}

// FuzzParseAutoboot: ParseAutoboot never panics, and what it accepts, the
// simulated firmware reads the same way, with and without the flag, on a
// Pi 4 and a Pi 5.
func FuzzParseAutoboot(f *testing.F) {
	for _, s := range []string{docExample, string(Autoboot{contract.SlotB, contract.SlotA}.Render()), "", "[all]\n[pi4]\nboot_partition=3\n", "[none]\nboot_partition=2\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ab, err := ParseAutoboot(b)
		if err != nil {
			return
		}
		card := pifirmware.Card{1: &bootloader.MemFS{}}
		if err := card[1].WriteFile("autoboot.txt", strings.NewReader(string(b))); err != nil {
			t.Fatal(err)
		}
		part := map[contract.Slot]int{contract.SlotA: 2, contract.SlotB: 3}
		for _, model := range models {
			for flag, want := range map[bool]contract.Slot{false: ab.Default, true: ab.Trial} {
				got, abFlag := pifirmware.Partition(card, model, flag)
				if got != part[want] || !abFlag {
					t.Fatalf("ParseAutoboot(%q) = %+v, but the firmware (%s, flag %v) boots partition %d, tryboot_a_b %v", b, ab, model, flag, got, abFlag)
				}
			}
		}
	})
}
