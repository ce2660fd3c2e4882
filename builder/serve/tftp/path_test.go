package tftp

import (
	"strings"
	"testing"
)

func TestCleanName(t *testing.T) {
	for _, tt := range []struct {
		name string
		want string // "" for a refusal
		err  string // in the refusal
	}{
		{"pxelinux.0", "pxelinux.0", ""},
		{"/pxelinux.0", "pxelinux.0", ""},
		{"///efi/boot/bootx64.efi", "efi/boot/bootx64.efi", ""},
		{"pxelinux.cfg/01-52-54-00-12-34-56", "pxelinux.cfg/01-52-54-00-12-34-56", ""},
		{"a..b", "a..b", ""},
		{"...", "...", ""},
		{"ünïcode", "ünïcode", ""},

		{"", "", "served directory itself"},
		{"/", "", "served directory itself"},
		{"..", "", "not a clean path"},
		{"../etc/passwd", "", "not a clean path"},
		{"/../etc/passwd", "", "not a clean path"},
		{"efi/../../x", "", "not a clean path"},
		{"efi/..", "", "not a clean path"},
		{"./x", "", "not a clean path"},
		{"efi//x", "", "not a clean path"},
		{"efi/", "", "not a clean path"},
		{`..\x`, "", "backslash"},
		{`efi\boot\bootx64.efi`, "", "backslash"},
		{"x\x00y", "", "control character"},
		{"x\ny", "", "control character"},
		{"x\x7f", "", "control character"},
		{"\xff\xfe", "", "not a clean path"},
	} {
		got, err := cleanName(tt.name)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("cleanName(%q) = %q, %v; want an error with %q", tt.name, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("cleanName(%q) = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}
