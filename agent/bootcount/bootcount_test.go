package bootcount

import (
	"os"
	"path/filepath"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    uint64
		wantErr bool
	}{
		{in: "", want: 0},
		{in: "7\n", want: 7},
		{in: " 12 ", want: 12},
		{in: "x", wantErr: true},
		{in: "-1", wantErr: true},
		{in: "99999999999999999999999", wantErr: true},
	} {
		got, err := Parse([]byte(tt.in))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("Parse(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestIncrement(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lib", "cairn", "boots")
	for want := uint64(1); want <= 3; want++ {
		got, warn, err := Increment(path)
		if err != nil || warn != nil || got != want {
			t.Fatalf("Increment() = %d, %v, %v; want %d", got, warn, err, want)
		}
	}
	if b, _ := os.ReadFile(path); string(b) != "3\n" {
		t.Errorf("file holds %q, want %q", b, "3\n")
	}
	if err := os.WriteFile(path, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, warn, err := Increment(path)
	if err != nil || warn == nil || got != 1 {
		t.Errorf("Increment(corrupt) = %d, %v, %v; want 1 with a warning", got, warn, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = Parse(b)
	})
}
