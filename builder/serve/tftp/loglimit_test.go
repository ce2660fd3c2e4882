package tftp

import (
	"testing"
	"time"
)

func TestLogLimiter(t *testing.T) {
	l := newLogLimiter(3, time.Second)
	t0 := time.Unix(1000, 0)
	type step struct {
		at      time.Duration
		ok      bool
		dropped int
	}
	for i, s := range []step{
		{0, true, 0}, {0, true, 0}, {0, true, 0}, // the burst
		{0, false, 0}, {500 * time.Millisecond, false, 0}, // dropped: 2
		{1 * time.Second, true, 2}, // one token back, and the count
		{1 * time.Second, false, 0},
		{10 * time.Second, true, 1}, {10 * time.Second, true, 0}, {10 * time.Second, true, 0}, // refilled to the burst, no more
		{10 * time.Second, false, 0},
	} {
		ok, dropped := l.allow(t0.Add(s.at))
		if ok != s.ok || dropped != s.dropped {
			t.Errorf("step %d at %v: allow = %v, %d; want %v, %d", i, s.at, ok, dropped, s.ok, s.dropped)
		}
	}
	if n := l.flush(); n != 1 {
		t.Errorf("flush = %d, want 1", n)
	}
	if n := l.flush(); n != 0 {
		t.Errorf("second flush = %d, want 0", n)
	}
}
