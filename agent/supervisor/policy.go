package supervisor

import "time"

// Mode says which exits are followed by a restart. Its values are the
// services' restart policies (config.RestartPolicy).
type Mode string

// Restart modes.
const (
	Always    Mode = "always"     // after every exit; the zero Mode too
	OnFailure Mode = "on-failure" // after a non-zero exit
	Never     Mode = "never"      // never: an exit keeps the thing down
)

// Restarts reports whether a run that exited with code is followed by
// another.
func (m Mode) Restarts(code int) bool {
	switch m {
	case Never:
		return false
	case OnFailure:
		return code != 0
	default:
		return true
	}
}

// Backoff bounds restart delays: they start at Min, double after each
// quick exit up to Max, and reset once a run lasted longer than Max.
type Backoff struct {
	Min, Max time.Duration
}

// DefaultBackoff restarts after 1 s at first and at most every 30 s.
var DefaultBackoff = Backoff{Min: time.Second, Max: 30 * time.Second}

// Next returns the delay after a run that lasted ran, given the previous
// delay.
func (b Backoff) Next(prev, ran time.Duration) time.Duration {
	if ran > b.Max || prev == 0 {
		return b.Min
	}
	return min(prev*2, b.Max)
}

// Policy is when, and how soon, a Supervisor starts its Runner again.
// A start that failed is always tried again after the backoff: the mode
// is about how a run ended, and a thing that never ran did not end.
type Policy struct {
	Restart Mode
	// Backoff spaces the restarts; the zero Backoff means DefaultBackoff.
	Backoff Backoff
}
