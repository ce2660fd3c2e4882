package cmdline

import (
	"strings"
	"testing"
)

func TestSlot(t *testing.T) {
	for _, tt := range []struct {
		name    string
		in      string
		want    string
		wantErr string
	}{
		{name: "a", in: "console=ttyS0 cairn.slot=a quiet", want: "a"},
		{name: "b trailing newline", in: "BOOT_IMAGE=/vmlinuz cairn.slot=b\n", want: "b"},
		{name: "upper case", in: "cairn.slot=A", want: "a"},
		{name: "last wins", in: "cairn.slot=a cairn.slot=b", want: "b"},
		{name: "quoted", in: `cairn.slot="b"`, want: "b"},
		{name: "after -- is for init", in: "cairn.slot=a -- cairn.slot=b", want: "a"},
		{name: "tabs", in: "console=ttyAMA0\tcairn.slot=a", want: "a"},
		{name: "missing", in: "console=ttyS0", wantErr: "has no cairn.slot="},
		{name: "empty", in: "", wantErr: "has no cairn.slot="},
		{name: "bad name", in: "cairn.slot=c", wantErr: `cairn.slot="c", which is not a slot`},
		{name: "empty value", in: "cairn.slot=", wantErr: "not a slot"},
		{name: "flag only", in: "cairn.slot", wantErr: "not a slot"},
		{name: "path injection", in: "cairn.slot=../a", wantErr: "not a slot"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			got, err := c.Slot()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Slot() error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Slot(): %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("Slot() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRAMSlot(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    bool
		wantErr string
	}{
		{in: "cairn.slot=a", want: false},
		{in: "cairn.slot=a cairn.media=ram", want: true},
		{in: "cairn.media=disk", wantErr: `cairn.media="disk", which is not a boot medium (use cairn.media=ram`},
		{in: "cairn.media", wantErr: "not a boot medium"},
		{in: "cairn.media=RAM", wantErr: "not a boot medium"},
	} {
		c, err := Parse(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.RAMSlot()
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("RAMSlot(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("RAMSlot(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		in   string
		key  string
		want string
		ok   bool
	}{
		{in: `dyndbg="file foo.c +p" x=1`, key: "dyndbg", want: "file foo.c +p", ok: true},
		{in: `dyndbg="file foo.c +p" x=1`, key: "x", want: "1", ok: true},
		{in: "quiet", key: "quiet", want: "", ok: true},
		{in: "root=PARTLABEL=CAIRN-A", key: "root", want: "PARTLABEL=CAIRN-A", ok: true},
		{in: "quiet", key: "loud", ok: false},
		{in: `"a b"=c`, key: "a b", want: "c", ok: true},
	} {
		c, err := Parse(tt.in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.in, err)
		}
		got, ok := c.Get(tt.key)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Parse(%q).Get(%q) = %q, %v; want %q, %v", tt.in, tt.key, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseTooLong(t *testing.T) {
	if _, err := Parse(strings.Repeat("x", maxLen+1)); err == nil {
		t.Fatal("Parse of an oversized command line succeeded, want an error")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"cairn.slot=a", `x="y z" cairn.slot=b --`, "\"", "=", "cairn.slot=\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse(s)
		if err != nil {
			return
		}
		slot, err := c.Slot()
		if err == nil && slot != "a" && slot != "b" {
			t.Fatalf("Slot() = %q without error, want a or b", slot)
		}
		for _, k := range c.Keys() {
			if k == "" || strings.Contains(k, `"`) {
				t.Fatalf("key %q is empty or keeps a quote", k)
			}
		}
	})
}
