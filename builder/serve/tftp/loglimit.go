package tftp

import (
	"sync"
	"time"
)

// logLimiter is a token bucket for failure log lines: a burst gets
// through, then one line per interval. A flood of bad requests — a
// misconfigured client in a loop or someone scanning — then costs a line
// a second, and the next line that gets through says how many it
// replaces.
type logLimiter struct {
	burst    int
	interval time.Duration

	mu      sync.Mutex
	tokens  int
	last    time.Time // when tokens was last refilled
	dropped int
}

func newLogLimiter(burst int, interval time.Duration) *logLimiter {
	return &logLimiter{burst: burst, interval: interval, tokens: burst}
}

// allow reports whether a line may be logged at now and, if so, how many
// were dropped since the last one logged.
func (l *logLimiter) allow(now time.Time) (ok bool, dropped int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last.IsZero() {
		l.last = now
	}
	if refill := int(now.Sub(l.last) / l.interval); refill > 0 {
		l.tokens = min(l.burst, l.tokens+refill)
		l.last = l.last.Add(time.Duration(refill) * l.interval)
	}
	if l.tokens == 0 {
		l.dropped++
		return false, 0
	}
	l.tokens--
	dropped, l.dropped = l.dropped, 0
	return true, dropped
}

// flush returns the count of lines dropped since the last one logged,
// and resets it, for a summary when the server stops.
func (l *logLimiter) flush() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	dropped := l.dropped
	l.dropped = 0
	return dropped
}
