package faultproxy

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// upstream serves size bytes to every connection.
func upstream(t *testing.T, size int) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Write(bytes.Repeat([]byte{'x'}, size))
			}()
		}
	}()
	return ln.Addr().String()
}

func read(t *testing.T, addr string) (int, time.Duration) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	n, _ := io.Copy(io.Discard, c)
	return int(n), time.Since(start)
}

func TestFaults(t *testing.T) {
	up := upstream(t, 100000)
	p, err := Start(Options{Upstream: up,
		PerConn: [][]Fault{{{After: 1234, Cut: true}}, {{After: 10, Stall: 200 * time.Millisecond}}, nil},
		Total:   []Fault{{After: 1234 + 100000 + 50000, Cut: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i, want := range []int{1234, 100000, 50000, 100000} {
		n, d := read(t, p.Addr())
		if n != want {
			t.Errorf("connection %d: %d bytes, want %d", i, n, want)
		}
		if i == 1 && d < 200*time.Millisecond {
			t.Errorf("connection 1 was not stalled (%v)", d)
		}
	}
	st := p.Stats()
	if st.Conns != 4 || st.Cuts != 2 || st.Stalls != 1 || st.Down != 1234+100000+50000+100000 {
		t.Errorf("stats %+v", st)
	}
}

func TestCloseEndsStall(t *testing.T) {
	p, err := Start(Options{Upstream: upstream(t, 1000), PerConn: [][]Fault{{{After: 1, Stall: time.Hour}}}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { p.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for a stall")
	}
}
