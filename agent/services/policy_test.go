package services

import (
	"testing"

	"github.com/cairn-edge/cairn/agent/config"
	"github.com/cairn-edge/cairn/agent/supervisor"
)

// TestRestartPolicy: the Manager hands a service's RestartPolicy to its
// supervisor as the Mode of the same name, which decides as the spec says.
func TestRestartPolicy(t *testing.T) {
	for _, tt := range []struct {
		p    config.RestartPolicy
		code uint32
		want bool
	}{
		{"", 0, true}, {"", 1, true},
		{config.RestartAlways, 0, true}, {config.RestartAlways, 137, true},
		{config.RestartOnFailure, 0, false}, {config.RestartOnFailure, 1, true}, {config.RestartOnFailure, 255, true},
		{config.RestartNever, 0, false}, {config.RestartNever, 1, false},
	} {
		if got := supervisor.Mode(tt.p).Restarts(int(tt.code)); got != tt.want {
			t.Errorf("RestartPolicy(%q) restarts after exit %d = %v, want %v", tt.p, tt.code, got, tt.want)
		}
	}
}
