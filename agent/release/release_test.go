package release

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		name    string
		in      string
		want    Release
		wantErr string
	}{
		{
			name: "builder output",
			in:   "NAME=minimal\nVERSION=0.1.0\nBOARD=qemu-x86_64\nARCH=amd64\n",
			want: Release{Name: "minimal", Version: "0.1.0", Board: "qemu-x86_64", Arch: "amd64"},
		},
		{
			name: "comments quotes unknown keys",
			in:   "# made by cairn\n\nNAME=\"edge\"\nVERSION = 1.2.0\nFUTURE=x\r\n",
			want: Release{Name: "edge", Version: "1.2.0"},
		},
		{name: "no version", in: "NAME=minimal\n", wantErr: "no NAME= or VERSION="},
		{name: "empty", in: "", wantErr: "no NAME= or VERSION="},
		{name: "not key value", in: "NAME=a\nVERSION=1\ngarbage\n", wantErr: "line 3"},
		{name: "space in version", in: "NAME=a\nVERSION=1 2\n", wantErr: "whitespace"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse() error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Parse() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add("NAME=minimal\nVERSION=0.1.0\nBOARD=qemu-x86_64\nARCH=amd64\n")
	f.Add("NAME=\"\nVERSION=\"\"")
	f.Fuzz(func(t *testing.T, s string) {
		rel, err := Parse(strings.NewReader(s))
		if err != nil {
			return
		}
		if rel.Name == "" || rel.Version == "" || strings.ContainsAny(rel.Version, " \t\n") {
			t.Fatalf("Parse(%q) = %+v without error", s, rel)
		}
	})
}
