package output

import (
	"strings"
	"testing"
)

func TestLookup(t *testing.T) {
	tests := []struct {
		format, wantErr string
	}{
		{"raw", ""},
		{DefaultFormat, ""},
		{"iso", `output format "iso" is not one Cairn writes (use --format oci or pxe or raw)`},
		{"", `output format "" is not one Cairn writes`},
		{"RAW", `output format "RAW" is not one Cairn writes`},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			w, err := Lookup(tt.format)
			if tt.wantErr == "" {
				if err != nil || w == nil {
					t.Fatalf("Lookup(%q) = %v, %v; want a writer", tt.format, w, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Lookup(%q) error = %v, want %q", tt.format, err, tt.wantErr)
			}
		})
	}
}
