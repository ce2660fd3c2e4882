package source

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	const hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		raw            string
		kind           Kind
		path, tag, dig string
		wantErr        string
	}{
		{raw: "oci-layout:../.cache/oci:linux-amd64", kind: Layout, path: ".cache/oci", tag: "linux-amd64"},
		{raw: "oci-layout:/abs/dir", kind: Layout, path: "/abs/dir"},
		{raw: "oci-layout:dir:tag@sha256:" + hex, kind: Layout, path: "boards/dir", tag: "tag", dig: hex},
		{raw: "tarball:k.tar", kind: Tarball, path: "boards/k.tar"},
		{raw: "tarball:k.tar:v1", kind: Tarball, path: "boards/k.tar", tag: "v1"},
		{raw: "registry.example/kernel:6.1", kind: Registry},
		{raw: "registry.example/kernel@sha256:" + hex, kind: Registry, dig: hex},
		{raw: "", wantErr: "empty reference"},
		{raw: "oci-layout:", wantErr: "names no path"},
		{raw: "oci-layout:dir:", wantErr: "empty tag"},
		{raw: "oci-layout:dir@sha256:zz", wantErr: "malformed digest"},
		{raw: "Not A Ref!", wantErr: "is malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			r, err := Parse(tt.raw, "boards")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Kind != tt.kind || r.Path != tt.path || r.Tag != tt.tag || r.Digest.Hex != tt.dig {
				t.Errorf("Parse = kind %v path %q tag %q digest %q; want %v %q %q %q", r.Kind, r.Path, r.Tag, r.Digest.Hex, tt.kind, tt.path, tt.tag, tt.dig)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add("oci-layout:dir:tag@sha256:0123")
	f.Add("registry.example/a/b:c")
	f.Add("tarball:x")
	f.Fuzz(func(t *testing.T, raw string) {
		r, err := Parse(raw, "d")
		if err == nil && r.Kind != Registry && r.Path == "" {
			t.Fatalf("Parse(%q) accepted a local reference without a path", raw)
		}
	})
}
