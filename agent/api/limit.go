package api

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Limits on what anyone who can reach the API's port may hold without a
// client certificate (issue 11, finding 4).
const (
	// maxConns caps the connections the API holds at once. An admin's CLI
	// and a Prometheus scraper need a handful; 256 leaves room for many
	// log streams while a small board keeps its file descriptors (the
	// agent's soft limit is 1,024) and memory (a TLS connection costs tens
	// of KiB) for the services it runs.
	maxConns = 256
	// handshakeTimeout bounds the TLS handshake and the wait for a
	// request's header. net/http sets it as the deadline of the handshake
	// (the least of ReadHeaderTimeout, ReadTimeout and WriteTimeout, see
	// tlsHandshakeTimeout in net/http/server.go), so a connection that
	// never proves a client certificate is closed within it. A LAN or Wi-Fi
	// handshake takes milliseconds; 5 s leaves room for a congested link.
	handshakeTimeout = 5 * time.Second
	// idleTimeout closes keep-alive connections no request uses.
	idleTimeout = 2 * time.Minute
	// failureLogEvery is how often at most a summary of failed handshakes
	// and dropped connections reaches the log (and the serial console).
	failureLogEvery = 30 * time.Second
)

// connCounters are the connection metrics; the limiter and failureLog
// update them, writeMetrics reads them.
type connCounters struct {
	open, handshakeFailures, evicted, refused atomic.Int64
}

// connState is where a connection is in its life, as http.Server's
// ConnState hook reports it.
type connState int

const (
	connSilent connState = iota // has sent nothing
	connNew                     // handshaking, or no request yet: not proven
	connIdle                    // served a request, waits for the next
	connActive                  // serving a request
)

// limiter is a listener that holds at most max connections. When full it
// makes room by closing, in this order, the oldest connection
//   - that has sent nothing yet;
//   - that has not sent a request yet: it has no verified client
//     certificate yet, and times out within handshakeTimeout anyway;
//   - that is an idle keep-alive one (its client reconnects).
//
// Failing that (every slot serves a request, which takes a client
// certificate) it closes the new connection at once. So attackers cannot
// lock an admin out: a flood of silent connections only pushes out its own
// (an admin's client speaks first in TLS), and each new connection pushes
// out the oldest of the handshaking ones, while an admin's is the newest.
type limiter struct {
	net.Listener
	max     int
	counts  *connCounters
	failLog *failureLog

	mu    sync.Mutex
	conns []*limitedConn // oldest first
}

func newLimiter(ln net.Listener, max int, counts *connCounters, failLog *failureLog) *limiter {
	return &limiter{Listener: ln, max: max, counts: counts, failLog: failLog}
}

// Accept returns the next connection, making room for it if the limiter
// is full.
func (l *limiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		lc := &limitedConn{Conn: c, l: l}
		victim, ok := l.admit(lc)
		if victim != nil {
			l.counts.evicted.Add(1)
			l.failLog.evict(victim.RemoteAddr())
			victim.Conn.Close() // its goroutine in net/http ends and calls Close
		}
		if ok {
			return lc, nil
		}
		l.counts.refused.Add(1)
		l.failLog.refuse(c.RemoteAddr())
		c.Close()
	}
}

// admit adds c, first removing the victim it returns to make room; ok is
// false if there is no room.
func (l *limiter) admit(c *limitedConn) (victim *limitedConn, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.conns) >= l.max {
		i := l.oldestSilent()
		if i < 0 {
			i = l.oldest(connNew)
		}
		if i < 0 {
			i = l.oldest(connIdle)
		}
		if i < 0 {
			return nil, false
		}
		victim = l.conns[i]
		l.conns = append(l.conns[:i], l.conns[i+1:]...)
		victim.released = true
		l.counts.open.Add(-1)
	}
	l.conns = append(l.conns, c)
	l.counts.open.Add(1)
	return victim, true
}

// oldest returns the index of the oldest connection in state st, or -1.
// l.mu is held.
func (l *limiter) oldest(st connState) int {
	for i, c := range l.conns {
		if c.state == st {
			return i
		}
	}
	return -1
}

// oldestSilent returns the index of the oldest connection that has sent
// nothing, or -1. One whose bytes wait unread (its goroutine has not run
// yet, as under a flood) has spoken: it is an admin's as likely as not.
// l.mu is held.
func (l *limiter) oldestSilent() int {
	for i, c := range l.conns {
		if c.state != connSilent {
			continue
		}
		if !unread(c.Conn) {
			return i
		}
		c.state = connNew
	}
	return -1
}

// unread tells whether c has received bytes not read yet, without waiting.
func unread(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	n := 0
	// Control, not Read: Read would wait for the goroutine blocked reading it.
	raw.Control(func(fd uintptr) {
		var b [1]byte
		n, _, _ = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	})
	return n > 0
}

// release frees c's slot unless eviction already did.
func (l *limiter) release(c *limitedConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.released {
		return
	}
	c.released = true
	for i, o := range l.conns {
		if o == c {
			l.conns = append(l.conns[:i], l.conns[i+1:]...)
			break
		}
	}
	l.counts.open.Add(-1)
}

// connState is the http.Server ConnState hook: it tells which connections
// have proven themselves by sending a request.
func (l *limiter) connState(c net.Conn, st http.ConnState) {
	lc := limitedConnOf(c)
	if lc == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch st {
	case http.StateActive:
		lc.state = connActive
	case http.StateIdle:
		lc.state = connIdle
	}
}

// limitedConnOf finds the limitedConn under c, which is a *tls.Conn when
// served over TLS.
func limitedConnOf(c net.Conn) *limitedConn {
	for {
		switch v := c.(type) {
		case *limitedConn:
			return v
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil
		}
	}
}

// limitedConn is a connection holding a slot of its limiter.
type limitedConn struct {
	net.Conn
	l        *limiter
	once     sync.Once
	spoke    atomic.Bool // it has sent something
	state    connState   // under l.mu
	released bool        // under l.mu: the slot is free
}

// Read reads from the connection, noting the first bytes it sends.
func (c *limitedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.spoke.Load() {
		c.spoke.Store(true)
		c.l.mu.Lock()
		if c.state == connSilent {
			c.state = connNew
		}
		c.l.mu.Unlock()
	}
	return n, err
}

// Close closes the connection and frees its slot.
func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c) })
	return err
}

// failureLog counts failed TLS handshakes and dropped connections and logs
// them at most once per interval, as one summary line: a flood of them
// must not flood the serial console. The first after a quiet interval is
// logged at once, so an admin with the wrong certificate sees why.
type failureLog struct {
	log    *slog.Logger
	every  time.Duration
	counts *connCounters

	mu                           sync.Mutex
	last                         time.Time // when the last summary was written
	timer                        *time.Timer
	stopped                      bool
	since                        time.Time // first event of this summary
	handshakes, evicted, refused int
	addrs                        map[string]bool // client hosts, at most maxAddrs
	example                      string          // "host: reason" of the first failure
}

// maxAddrs bounds the addresses a summary remembers.
const maxAddrs = 1024

func newFailureLog(log *slog.Logger, every time.Duration, counts *connCounters) *failureLog {
	return &failureLog{log: log, every: every, counts: counts, addrs: map[string]bool{}}
}

// handshake records a failed TLS handshake from addr.
func (f *failureLog) handshake(addr, reason string) {
	f.counts.handshakeFailures.Add(1)
	f.record(addr, reason, &f.handshakes)
}

func (f *failureLog) evict(addr net.Addr) {
	f.record(addr.String(), "evicted at the connection cap", &f.evicted)
}

func (f *failureLog) refuse(addr net.Addr) {
	f.record(addr.String(), "refused at the connection cap", &f.refused)
}

func (f *failureLog) record(addr, reason string, n *int) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return
	}
	*n++
	if len(f.addrs) < maxAddrs {
		f.addrs[host] = true
	}
	if f.example == "" {
		f.example = host + ": " + reason
		f.since = time.Now()
	}
	if f.timer == nil {
		f.timer = time.AfterFunc(time.Until(f.last.Add(f.every)), f.flush)
	}
}

// flush writes the summary, if there is anything to say.
func (f *failureLog) flush() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.timer = nil
	if f.example == "" {
		return
	}
	var what []string
	for _, c := range []struct {
		n         int
		one, many string
	}{
		{f.handshakes, "failed TLS handshake", "failed TLS handshakes"},
		{f.evicted, "connection evicted", "connections evicted"},
		{f.refused, "connection refused", "connections refused"},
	} {
		switch {
		case c.n == 1:
			what = append(what, "1 "+c.one)
		case c.n > 1:
			what = append(what, fmt.Sprintf("%d %s", c.n, c.many))
		}
	}
	addrs := fmt.Sprintf("%d addresses", len(f.addrs))
	switch {
	case len(f.addrs) == 1:
		addrs = "1 address"
	case len(f.addrs) >= maxAddrs:
		addrs = fmt.Sprintf("%d or more addresses", maxAddrs)
	}
	msg := "api: " + strings.Join(what, ", ") + " from " + addrs
	if d := time.Since(f.since).Round(time.Second); d > 0 {
		msg += " in the last " + d.String()
	}
	f.log.Warn(msg+", e.g. "+f.example, "handshakes", f.handshakes, "evicted", f.evicted, "refused", f.refused)
	f.last = time.Now()
	f.handshakes, f.evicted, f.refused, f.example = 0, 0, 0, ""
	clear(f.addrs)
}

// stop writes what is pending and drops what comes after.
func (f *failureLog) stop() {
	f.mu.Lock()
	if f.timer != nil {
		f.timer.Stop()
	}
	f.mu.Unlock()
	f.flush()
	f.mu.Lock()
	f.stopped = true
	f.mu.Unlock()
}

// errorLog is net/http's ErrorLog: TLS handshake failures (clients without
// a valid certificate, scanners, timeouts) go to failureLog, other lines
// to slog as they come.
type errorLog struct {
	log     *slog.Logger
	failLog *failureLog
}

func (w errorLog) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	if rest, ok := strings.CutPrefix(line, "http: TLS handshake error from "); ok {
		addr, reason, _ := strings.Cut(rest, ": ")
		// The limiter closed it to make room and counted that already.
		if !strings.HasSuffix(reason, net.ErrClosed.Error()) {
			w.failLog.handshake(addr, reason)
		}
		return len(p), nil
	}
	w.log.Warn("api: " + line)
	return len(p), nil
}
