package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/agent/api/floodtest"
	"github.com/cairn-edge/cairn/builder/pki"
)

func TestFailureLogSummary(t *testing.T) {
	var buf bytes.Buffer
	f := newFailureLog(slog.New(slog.NewTextHandler(&buf, nil)), time.Hour, &connCounters{})
	f.last = time.Now() // a summary was just written: the next waits
	f.handshake("10.0.2.2:4711", "remote error: tls: bad certificate")
	f.handshake("10.0.2.2:4712", "EOF")
	f.handshake("[fe80::1]:4713", "EOF")
	f.evict(&net.TCPAddr{IP: net.IPv4(10, 0, 2, 3), Port: 1})
	if buf.Len() != 0 {
		t.Fatalf("logged before the interval: %s", buf.String())
	}
	f.stop()
	f.handshake("10.0.2.2:4714", "EOF") // after stop: dropped
	f.flush()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := `msg="api: 3 failed TLS handshakes, 1 connection evicted from 3 addresses, e.g. 10.0.2.2: remote error: tls: bad certificate"`
	if len(lines) != 1 || !strings.Contains(lines[0], want) {
		t.Errorf("log:\n%s\nwant one line with %s", buf.String(), want)
	}
	if got := f.counts.handshakeFailures.Load(); got != 4 {
		t.Errorf("handshake failures counted = %d, want 4", got)
	}
}

// TestHandshakeTimeout: a connection that does not finish its handshake is
// closed within the bound.
func TestHandshakeTimeout(t *testing.T) {
	const bound = 300 * time.Millisecond
	e := start(t, func(s *Server) { s.handshakeTimeout = bound })
	tests := []struct {
		name string
		send []byte
	}{
		{"sends nothing", nil},
		{"half a ClientHello", []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}}, // a record of 512 bytes, 1 sent
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", strings.TrimPrefix(e.url, "https://"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			t0 := time.Now()
			c.Write(tt.send)
			c.SetReadDeadline(t0.Add(5 * time.Second))
			_, err = io.Copy(io.Discard, c)
			took := time.Since(t0)
			if err != nil {
				t.Fatalf("not closed after %v: %v", took, err)
			}
			if took < bound/2 || took > bound+2*time.Second {
				t.Errorf("closed after %v, want about %v", took, bound)
			}
		})
	}
}

// TestConnCap: connections beyond the cap don't make the server hold more
// (nor more goroutines), and a valid client still gets in.
func TestConnCap(t *testing.T) {
	const limit, idle = 16, 500
	e := start(t, func(s *Server) { s.maxConns = limit })
	ctx := context.Background()
	if _, err := e.client.Status(ctx); err != nil {
		t.Fatal(err)
	}
	e.client.CloseIdleConnections()
	before := runtime.NumGoroutine()
	addr := strings.TrimPrefix(e.url, "https://")
	for range idle {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	if _, err := e.client.Status(ctx); err != nil {
		t.Fatalf("valid client behind %d idle connections: %v", idle, err)
	}
	time.Sleep(100 * time.Millisecond) // let evicted connections' goroutines end
	after := runtime.NumGoroutine()
	t.Logf("goroutines: %d before, %d with %d idle connections (cap %d)", before, after, idle, limit)
	if after > before+limit+10 {
		t.Errorf("goroutines grew from %d to %d with %d idle connections, cap %d", before, after, idle, limit)
	}
	if n := e.srv.conns.open.Load(); n > limit {
		t.Errorf("server holds %d connections, cap %d", n, limit)
	}
	if n := e.srv.conns.evicted.Load(); n < idle-limit {
		t.Errorf("evicted %d, want at least %d", n, idle-limit)
	}

	t.Run("full of requests", func(t *testing.T) {
		// Every slot serves a request (log streams): a new connection is
		// refused at once instead of waiting.
		streams, cancel := context.WithCancel(ctx)
		defer cancel()
		for range limit {
			c := e.clientWith(t, e.pki.CA, e.pki.Client, testNode)
			rc, err := c.Logs(streams, "containerd", LogOptions{Follow: true})
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
		}
		c := e.clientWith(t, e.pki.CA, e.pki.Client, testNode)
		t0 := time.Now()
		if _, err := c.Status(ctx); err == nil {
			t.Error("served beyond the cap")
		}
		if took := time.Since(t0); took > 2*time.Second {
			t.Errorf("refusal took %v", took)
		}
		if e.srv.conns.refused.Load() == 0 {
			t.Error("no refusal counted")
		}
	})
}

// TestFlood: idle connections and bad handshakes by the thousand while an
// admin calls status, on new connections too; every call succeeds, quickly,
// and the log stays a few lines. It runs 3 s, 15 s with CAIRN_TEST_FULL,
// and logs the latency figures (-v).
func TestFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("flood test")
	}
	length := 3 * time.Second
	if os.Getenv("CAIRN_TEST_FULL") != "" {
		length = 15 * time.Second
	}
	idle := idleBudget(t, 2000)
	e := start(t)
	ctx := context.Background()
	addr := strings.TrimPrefix(e.url, "https://")

	// calls calls status for d, a new connection every 10th call, and
	// returns the latencies.
	calls := func(d time.Duration) []time.Duration {
		var took []time.Duration
		for i, end := 0, time.Now().Add(d); time.Now().Before(end); i++ {
			t0 := time.Now()
			if i%10 == 0 {
				e.client.CloseIdleConnections()
			}
			if _, err := e.client.Status(ctx); err != nil {
				t.Errorf("status call %d: %v", i, err)
			}
			took = append(took, time.Since(t0))
		}
		return took
	}
	quiet := calls(length / 3)

	other, err := pki.Ensure(filepath.Join(t.TempDir(), "other"), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(e.pki.CA.Cert)
	bad := []*tls.Config{
		ClientTLS(pool, tls.Certificate{}, testNode),        // no certificate
		ClientTLS(pool, tlsCert(t, other.Client), testNode), // another CA's
		ClientTLS(pool, tlsCert(t, e.identity), testNode),   // the server's own
		nil, // not TLS at all
	}
	f := floodtest.Start(addr, idle, bad)
	flood, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var held atomic.Int64 // the most connections the server held
	wg.Go(func() {
		for flood.Err() == nil {
			if n := e.srv.conns.open.Load(); n > held.Load() {
				held.Store(n)
			}
			time.Sleep(time.Millisecond)
		}
	})
	time.Sleep(200 * time.Millisecond) // fill the server up
	loud := calls(length)
	stop()
	wg.Wait()
	f.Stop()

	m, err := e.client.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.stop(); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(e.log.String()), "\n") {
		if !strings.Contains(l, `msg="api request"`) {
			lines = append(lines, l)
		}
	}
	q, l := floodtest.Percentiles(quiet), floodtest.Percentiles(loud)
	t.Logf("status latency p50/p99: idle %v/%v (%d calls), under flood %v/%v (%d calls); flood: %d idle connections dialed (%d held open), %d bad handshakes; server held at most %d connections; %d log lines:\n%s",
		q[0], q[1], len(quiet), l[0], l[1], len(loud), f.Dialed.Load(), idle, f.Handshakes.Load(), held.Load(), len(lines), strings.Join(lines, "\n"))
	if l[1] > 2*time.Second {
		t.Errorf("p99 under flood %v, want under 2s", l[1])
	}
	if n := held.Load(); n > maxConns {
		t.Errorf("server held %d connections, cap %d", n, maxConns)
	}
	if len(lines) > 5 || len(lines) == 0 || !strings.Contains(strings.Join(lines, "\n"), "failed TLS handshakes") {
		t.Errorf("want a few summary lines, got %d", len(lines))
	}
	for _, want := range []string{"cairn_api_tls_handshake_failures_total ", `cairn_api_connections_dropped_total{reason="evicted"} `} {
		i := strings.Index(string(m), "\n"+want)
		if i < 0 || strings.HasPrefix(string(m)[i+1+len(want):], "0\n") {
			t.Errorf("metrics: %s is missing or 0", want)
		}
	}
}

// idleBudget returns how many idle connections the flood can hold, want
// or fewer, keeping room for the server's and the test's own.
func idleBudget(t *testing.T, want int) int {
	return floodtest.IdleBudget(t, want, maxConns+200, 2*maxConns)
}
