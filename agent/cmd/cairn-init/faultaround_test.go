package main

import (
	"testing"

	"github.com/cairn-edge/cairn/agent/boot/cmdline"
)

func TestFaultAroundBytes(t *testing.T) {
	for _, tc := range []struct {
		cmdline string
		want    int
		bad     bool
	}{
		{"cairn.slot=a", 4096, false},
		{"cairn.slot=a cairn.fault_around_bytes=65536", 65536, false},
		{"cairn.fault_around_bytes=4096", 4096, false},
		{"cairn.fault_around_bytes=5000", 0, true},
		{"cairn.fault_around_bytes=2048", 0, true},
		{"cairn.fault_around_bytes=64k", 0, true},
		{"cairn.fault_around_bytes=", 0, true},
	} {
		cl, err := cmdline.Parse(tc.cmdline)
		if err != nil {
			t.Fatal(err)
		}
		got, err := faultAroundBytes(cl)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("%q: got %d, %v; want %d (error: %v)", tc.cmdline, got, err, tc.want, tc.bad)
		}
	}
}
