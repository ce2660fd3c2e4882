package qemu

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// console collects the guest's serial output: all of it as it came, and as
// lines stamped with when they ended, for Expect. Safe for concurrent use.
type console struct {
	start time.Time
	tee   io.Writer // optional log file

	mu      sync.Mutex
	raw     bytes.Buffer
	lines   []line
	partial []byte        // the line being received
	changed chan struct{} // closed and replaced on each write
	closed  bool          // no more output: QEMU exited
}

// line is one console line without its line ending and terminal escapes,
// with the time since QEMU started at which its newline arrived.
type line struct {
	text string
	at   time.Duration
}

func newConsole(start time.Time, tee io.Writer) *console {
	return &console{start: start, tee: tee, changed: make(chan struct{})}
}

// Write records serial output; QEMU's stdout is wired here.
func (c *console) Write(p []byte) (int, error) {
	at := time.Since(c.start)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.raw.Write(p)
	for rest := p; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			c.partial = append(c.partial, rest...)
			break
		}
		c.partial = append(c.partial, rest[:i]...)
		c.endLine(at)
		rest = rest[i+1:]
	}
	c.notify()
	if c.tee != nil {
		// A full disk must not stop the VM; the in-memory copy is complete.
		_, _ = c.tee.Write(p)
	}
	return len(p), nil
}

// endLine turns the partial line into a complete one. Call with mu held.
func (c *console) endLine(at time.Duration) {
	// Serial consoles end lines with \r\n.
	text := printable(strings.TrimRight(string(c.partial), "\r"))
	c.lines = append(c.lines, line{text: text, at: at})
	c.partial = c.partial[:0]
}

// close marks the end of output: a last unterminated line becomes a line.
func (c *console) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.partial) > 0 {
		c.endLine(time.Since(c.start))
	}
	c.closed = true
	c.notify()
}

func (c *console) notify() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// String returns everything the console printed so far.
func (c *console) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.raw.String()
}

// tail formats the last n lines (and any unterminated one), each stamped
// with its time since QEMU started.
func (c *console) tail(n int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	lines := c.lines[max(0, len(c.lines)-n):]
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "  [%7.2fs] %s\n", l.at.Seconds(), l.text)
	}
	if len(c.partial) > 0 {
		fmt.Fprintf(&b, "  [%7.2fs] %s (no newline yet)\n", time.Since(c.start).Seconds(), printable(string(c.partial)))
	}
	if b.Len() == 0 {
		return "  (the console printed nothing)\n"
	}
	return b.String()
}

// printable drops the terminal escape sequences firmware loves (cursor
// moves, colours), so error messages stay readable.
func printable(s string) string {
	if !strings.ContainsRune(s, '\x1b') && !strings.ContainsRune(s, '\r') {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case ch == '\x1b' && i+1 < len(s) && s[i+1] == '[':
			// CSI: parameters and intermediates up to a final byte in @–~.
			i += 2
			for i < len(s) && (s[i] < '@' || s[i] > '~') {
				i++
			}
		case ch == '\x1b':
			i++ // two-byte escape such as ESC c
		case ch == '\r':
			b.WriteByte(' ')
		default:
			b.WriteByte(ch)
		}
	}
	return b.String()
}
