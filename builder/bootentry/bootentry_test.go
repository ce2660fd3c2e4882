package bootentry

import (
	"reflect"
	"strings"
	"testing"
)

func TestFileName(t *testing.T) {
	tests := []struct {
		e    Entry
		want string
	}{
		{Entry{Slot: "a"}, "cairn-a.conf"},
		{Entry{Slot: "b", Counting: true, Left: 3}, "cairn-b+3.conf"},
		{Entry{Slot: "b", Counting: true, Left: 0, Done: 3}, "cairn-b+0-3.conf"},
	}
	for _, tt := range tests {
		if got := tt.e.FileName(); got != tt.want {
			t.Errorf("FileName(%+v) = %q, want %q", tt.e, got, tt.want)
		}
		back, err := ParseFileName(tt.want)
		if err != nil || back.Slot != tt.e.Slot || back.Left != tt.e.Left || back.Done != tt.e.Done || back.Counting != tt.e.Counting {
			t.Errorf("ParseFileName(%q) = %+v, %v", tt.want, back, err)
		}
	}
}

func TestParseFileNameErrors(t *testing.T) {
	for _, name := range []string{"cairn-c.conf", "other.conf", "cairn-a", "cairn-a+x.conf", "cairn-a+1-.conf", "cairn-a+-1.conf", "cairn-a+01.conf", "cairn-.conf"} {
		if _, err := ParseFileName(name); err == nil {
			t.Errorf("ParseFileName(%q) accepted a bad name", name)
		}
	}
}

func TestRenderParse(t *testing.T) {
	e := Entry{Slot: "a", Title: "Cairn 1.0.0 (slot A)", Version: "1.0.0", Linux: "/cairn/a/vmlinuz", Initrd: "/cairn/a/initrd", Options: "cairn.slot=a console=ttyS0"}
	got, err := Parse(e.FileName(), e.Render())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, e) {
		t.Errorf("Parse(Render()) = %+v, want %+v", got, e)
	}
	if _, err := Parse("cairn-a.conf", []byte("title x\n")); err == nil || !strings.Contains(err.Error(), "no linux line") {
		t.Errorf("Parse without linux: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("cairn-b+2-1.conf", "title t\nlinux /k\n")
	f.Fuzz(func(t *testing.T, name, data string) {
		e, err := Parse(name, []byte(data))
		if err != nil {
			return
		}
		if e.Slot != "a" && e.Slot != "b" || e.Linux == "" {
			t.Fatalf("accepted %q: %+v", name, e)
		}
		if back, err := ParseFileName(e.FileName()); err != nil || back.Left != e.Left || back.Done != e.Done {
			t.Fatalf("FileName round trip of %q: %+v, %v", name, back, err)
		}
	})
}
