// Package floodtest floods a node API the way anyone on its network can,
// without credentials: idle TCP connections held open, and a stream of
// TLS handshakes the node must refuse. The API's own tests and the QEMU
// tests use it.
//
//	f := floodtest.Start(addr, 2000, bad)
//	… call the API, time it …
//	f.Stop()
package floodtest

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Flood is a running flood.
type Flood struct {
	// Dialed counts the idle connections opened, Handshakes the bad
	// handshakes tried.
	Dialed, Handshakes atomic.Int64
	stop               context.CancelFunc
	wg                 sync.WaitGroup
}

// dialers is how many goroutines open idle connections: through a
// port forward each dial waits for the guest, so one alone is slow.
const dialers = 16

// Start floods addr until Stop: dialers goroutines keep the idle newest
// connections open between them, dialling new ones as fast as they can;
// another runs handshakes one after another with each of bad in turn (a
// nil entry sends bytes that are not TLS at all).
func Start(addr string, idle int, bad []*tls.Config) *Flood {
	ctx, stop := context.WithCancel(context.Background())
	f := &Flood{stop: stop}
	for d := range dialers {
		f.wg.Go(func() {
			ring := make([]net.Conn, (idle+dialers-1-d)/dialers) // this one's share
			if len(ring) == 0 {
				return
			}
			defer func() {
				for _, c := range ring {
					if c != nil {
						c.Close()
					}
				}
			}()
			for i := 0; ctx.Err() == nil; i = (i + 1) % len(ring) {
				c, err := net.DialTimeout("tcp", addr, time.Second)
				if err != nil {
					continue
				}
				f.Dialed.Add(1)
				if ring[i] != nil {
					ring[i].Close()
				}
				ring[i] = c
			}
		})
	}
	f.wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				continue
			}
			c.SetDeadline(time.Now().Add(2 * time.Second))
			if conf := bad[i%len(bad)]; conf != nil {
				tc := tls.Client(c, conf)
				if tc.Handshake() == nil {
					tc.Read(make([]byte, 1)) // TLS 1.3: the server's verdict comes after
				}
			} else {
				c.Write([]byte("\x00\x01garbage, not a ClientHello\r\n\r\n"))
				io.Copy(io.Discard, c)
			}
			c.Close()
			f.Handshakes.Add(1)
		}
	})
	return f
}

// Stop ends the flood and closes its connections.
func (f *Flood) Stop() {
	f.stop()
	f.wg.Wait()
}

// IdleBudget returns how many idle connections this process can hold,
// want or fewer: it raises the soft file descriptor limit to the hard one
// and keeps reserve descriptors for everything else. It skips the test
// when fewer than min remain.
func IdleBudget(t testing.TB, want, reserve, min int) int {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	if room := int(lim.Cur) - reserve; room < want {
		t.Logf("file descriptor limit %d: %d idle connections instead of %d", lim.Cur, room, want)
		want = room
	}
	if want < min {
		t.Skipf("file descriptor limit %d is too low for a flood", lim.Cur)
	}
	return want
}

// Percentiles returns the p50 and p99 of took.
func Percentiles(took []time.Duration) [2]time.Duration {
	s := slices.Clone(took)
	slices.Sort(s)
	return [2]time.Duration{s[len(s)/2].Round(time.Microsecond), s[len(s)*99/100].Round(time.Microsecond)}
}
