package services

import (
	"slices"
	"testing"

	"github.com/cairn-edge/cairn/agent/config"
)

func TestSpecMount(t *testing.T) {
	for _, tt := range []struct {
		in       config.Mount
		wantType string
		wantOpts []string
	}{
		{config.Mount{Source: "/a", Target: "/b"}, "bind", []string{"rbind"}},
		{config.Mount{Source: "/a", Target: "/b", Options: []string{"ro"}}, "bind", []string{"rbind", "ro"}},
		{config.Mount{Source: "/a", Target: "/b", Options: []string{"bind", "ro"}}, "bind", []string{"bind", "ro"}},
		{config.Mount{Type: "tmpfs", Source: "tmpfs", Target: "/tmp", Options: []string{"size=1m"}}, "tmpfs", []string{"size=1m"}},
	} {
		got := specMount(tt.in)
		if got.Type != tt.wantType || !slices.Equal(got.Options, tt.wantOpts) || got.Destination != tt.in.Target {
			t.Errorf("specMount(%+v) = %+v, want type %s options %v", tt.in, got, tt.wantType, tt.wantOpts)
		}
	}
}

func TestNotifiesReady(t *testing.T) {
	for _, tt := range []struct {
		msg  string
		want bool
	}{
		{"READY=1", true},
		{"STATUS=starting\nREADY=1\n", true},
		{"READY=0", false},
		{"STATUS=READY=1", false},
		{"", false},
	} {
		if got := notifiesReady([]byte(tt.msg)); got != tt.want {
			t.Errorf("notifiesReady(%q) = %v, want %v", tt.msg, got, tt.want)
		}
	}
}
