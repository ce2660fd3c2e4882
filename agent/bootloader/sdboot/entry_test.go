package sdboot

import (
	"reflect"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent/contract"
)

func TestFileName(t *testing.T) {
	for _, tt := range []struct {
		e    Entry
		want string
	}{
		{Entry{Gen: 1, Slot: contract.SlotA}, "cairn-00000001-a.conf"},
		{Entry{Gen: 12, Slot: contract.SlotB, Counting: true, Left: 1}, "cairn-00000012-b+1.conf"},
		{Entry{Gen: 3, Slot: contract.SlotB, Counting: true, Left: 0, Done: 1}, "cairn-00000003-b+0-1.conf"},
		{Entry{Gen: 123456789, Slot: contract.SlotA}, "cairn-123456789-a.conf"},
		// Names without a generation, as images before generations wrote.
		{Entry{Slot: contract.SlotA}, "cairn-a.conf"},
		{Entry{Slot: contract.SlotB, Counting: true, Left: 3}, "cairn-b+3.conf"},
		{Entry{Slot: contract.SlotB, Counting: true, Left: 0, Done: 3}, "cairn-b+0-3.conf"},
	} {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.e.FileName(); got != tt.want {
				t.Errorf("FileName(%+v) = %q, want %q", tt.e, got, tt.want)
			}
			back, err := ParseFileName(tt.want)
			if err != nil || back != tt.e {
				t.Errorf("ParseFileName(%q) = %+v, %v; want %+v", tt.want, back, err, tt.e)
			}
		})
	}
}

func TestParseFileNameErrors(t *testing.T) {
	for _, name := range []string{
		"cairn-c.conf", "other.conf", "cairn-a", "cairn-a+x.conf", "cairn-a+1-.conf", "cairn-a+-1.conf",
		"cairn-a+01.conf", "cairn-.conf", "cairn-A.conf", "cairn-a+1-0.conf", "cairn-a+1001.conf",
		"cairn-00000000-a.conf", "cairn-0000001-a.conf", "cairn-000000001-a.conf", "cairn-0000000x-a.conf",
		"cairn-00000001-.conf", "cairn-00000001-c.conf", "cairn-99999999999999999999-a.conf",
	} {
		if e, err := ParseFileName(name); err == nil {
			t.Errorf("ParseFileName(%q) accepted a bad name: %+v", name, e)
		}
	}
}

func TestRenderParse(t *testing.T) {
	e := Entry{Gen: 2, Slot: contract.SlotA, Title: "Cairn 1.0.0 (slot A)", Version: "1.0.0", Linux: "/cairn/a/vmlinuz", Initrd: "/cairn/a/initrd", Options: "console=ttyS0 cairn.slot=a"}
	got, err := Parse(e.FileName(), e.Render())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, e) {
		t.Errorf("Parse(Render()) = %+v, want %+v", got, e)
	}
	other := "# another tool's\nsort-key x\ntitle\tTabbed\nlinux /k\noptions a=1\noptions b=2\n"
	if got, err := Parse("cairn-a.conf", []byte(other)); err != nil || got.Title != "Tabbed" || got.Options != "a=1 b=2" {
		t.Errorf("Parse(%q) = %+v, %v; want the tabbed title and joined options", other, got, err)
	}
	if _, err := Parse("cairn-a.conf", []byte("title x\n")); err == nil || !strings.Contains(err.Error(), "no linux line") {
		t.Errorf("Parse without linux: %v", err)
	}
}

// FuzzParseFileName checks that every name accepted renders back the same:
// the agent removes and rewrites entries by the names it parsed.
func FuzzParseFileName(f *testing.F) {
	for _, s := range []string{"cairn-00000003-b+0-1.conf", "cairn-a.conf", "cairn-b+2.conf", "cairn-00000001-a.conf"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		e, err := ParseFileName(name)
		if err != nil {
			return
		}
		if got := e.FileName(); got != name {
			t.Fatalf("ParseFileName(%q) = %+v, which renders as %q", name, e, got)
		}
		if e.Slot != contract.SlotA && e.Slot != contract.SlotB {
			t.Fatalf("ParseFileName(%q) accepted slot %q", name, e.Slot)
		}
	})
}

// FuzzParse reads entry files as the agent reads them back from the ESP.
func FuzzParse(f *testing.F) {
	f.Add("cairn-00000002-b+1.conf", "title t\nlinux /k\n")
	f.Add("cairn-a.conf", "linux /cairn/a/vmlinuz\noptions x cairn.slot=a\n")
	f.Fuzz(func(t *testing.T, name, data string) {
		e, err := Parse(name, []byte(data))
		if err != nil {
			return
		}
		if e.Linux == "" {
			t.Fatalf("accepted %q without a linux line: %+v", data, e)
		}
		if e.FileName() != name {
			t.Fatalf("Parse(%q) renders its name as %q", name, e.FileName())
		}
	})
}
