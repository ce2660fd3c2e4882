package services

import (
	"testing"

	"github.com/cairn-edge/cairn/agent/supervisor"
)

// TestRestartPolicyMode: the Manager hands a service's RestartPolicy to
// its supervisor as the Mode of the same name; both decide alike.
func TestRestartPolicyMode(t *testing.T) {
	for _, p := range []RestartPolicy{"", RestartAlways, RestartOnFailure, RestartNever} {
		for _, code := range []uint32{0, 1, 137, 255} {
			if got, want := supervisor.Mode(p).Restarts(int(code)), p.restarts(code); got != want {
				t.Errorf("Mode(%q).Restarts(%d) = %v, want %v", p, code, got, want)
			}
		}
	}
}
