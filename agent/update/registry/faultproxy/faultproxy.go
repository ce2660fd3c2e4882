// Package faultproxy is a TCP proxy that breaks connections on purpose:
// it cuts a connection after a number of bytes, or stalls it for a while,
// following a script. Tests put it between a download and a registry to
// prove resumption (agent/update/registry's tests, and the QEMU spotty-link
// test between the guest and the host's registry).
//
//	p, err := faultproxy.Start(faultproxy.Options{
//		Upstream: "127.0.0.1:5000",
//		Total: []faultproxy.Fault{
//			{After: 3 << 20, Cut: true},
//			{After: 6 << 20, Stall: 45 * time.Second},
//		},
//	})
//	defer p.Close()
//	// point the client at p.Addr(); afterwards p.Stats() says what happened
//
// Byte counts are of the downstream direction (upstream to client): what a
// download receives.
package faultproxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"sync"
	"time"
)

// Fault is one thing done to the downstream stream once After bytes have
// passed: a stall, then a cut, or either alone.
type Fault struct {
	// After counts downstream bytes: of this connection for Options.PerConn,
	// of all connections together for Options.Total.
	After int64
	// Stall holds the stream for this long (the connection stays open).
	Stall time.Duration
	// Cut closes both sides of the connection.
	Cut bool
}

// Options configure a Proxy.
type Options struct {
	// Listen is the address to listen on (default 127.0.0.1:0).
	Listen string
	// Upstream is the address every connection is forwarded to.
	Upstream string
	// PerConn[i] are the faults of the i-th connection accepted (from 0);
	// later connections pass through.
	PerConn [][]Fault
	// Total are faults placed on the downstream bytes of all connections
	// together; each happens once, on the connection that carries its byte.
	Total []Fault
}

// Stats say what went through the proxy.
type Stats struct {
	// Conns is the number of connections accepted.
	Conns int
	// Down and Up are the bytes forwarded to clients and to the upstream.
	Down, Up int64
	// Cuts and Stalls are the faults done.
	Cuts, Stalls int
}

// Proxy forwards connections from its address to the upstream, with faults.
type Proxy struct {
	ln   net.Listener
	opt  Options
	done chan struct{}
	wg   sync.WaitGroup

	mu    sync.Mutex
	st    Stats
	total []Fault // pending, sorted by After
	conns map[net.Conn]bool
}

// Start listens and serves until Close.
func Start(o Options) (*Proxy, error) {
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if o.Upstream == "" {
		return nil, errors.New("faultproxy: no upstream address")
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: %w", err)
	}
	p := &Proxy{ln: ln, opt: o, done: make(chan struct{}), conns: map[net.Conn]bool{}}
	p.total = append([]Fault(nil), o.Total...)
	sort.SliceStable(p.total, func(i, j int) bool { return p.total[i].After < p.total[j].After })
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is the proxy's listening address (host:port).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Stats returns the counts so far.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st
}

// Close stops listening, ends every connection (cutting stalls short) and
// waits for them.
func (p *Proxy) Close() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	close(p.done)
	err := p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		n := p.st.Conns
		p.st.Conns++
		p.mu.Unlock()
		var faults []Fault
		if n < len(p.opt.PerConn) {
			faults = append(faults, p.opt.PerConn[n]...)
			sort.SliceStable(faults, func(i, j int) bool { return faults[i].After < faults[j].After })
		}
		p.wg.Add(1)
		go p.handle(c, faults)
	}
}

func (p *Proxy) track(c net.Conn, on bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		select {
		case <-p.done:
			return false
		default:
		}
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
	return true
}

func (p *Proxy) handle(client net.Conn, faults []Fault) {
	defer p.wg.Done()
	defer client.Close()
	if !p.track(client, true) {
		return
	}
	defer p.track(client, false)
	up, err := net.DialTimeout("tcp", p.opt.Upstream, 10*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	if !p.track(up, true) {
		return
	}
	defer p.track(up, false)

	go func() { // client → upstream, untouched
		n, _ := io.Copy(up, client)
		p.mu.Lock()
		p.st.Up += n
		p.mu.Unlock()
		if tc, ok := up.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
	}()

	buf := make([]byte, 32<<10)
	var sent int64 // on this connection
	for {
		n, err := up.Read(buf)
		b := buf[:n]
		for len(b) > 0 {
			k, f := p.next(int64(len(b)), sent, &faults)
			if _, werr := client.Write(b[:k]); werr != nil {
				return
			}
			sent += k
			b = b[k:]
			if f == nil {
				continue
			}
			if f.Stall > 0 {
				p.count(func(s *Stats) { s.Stalls++ })
				select {
				case <-time.After(f.Stall):
				case <-p.done:
					return
				}
			}
			if f.Cut {
				p.count(func(s *Stats) { s.Cuts++ })
				return // the deferred closes cut both sides
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *Proxy) count(f func(*Stats)) {
	p.mu.Lock()
	f(&p.st)
	p.mu.Unlock()
}

// next decides how many of n bytes to forward before the next fault, and
// returns that fault when those bytes reach it. sent is this connection's
// count so far; faults its pending ones.
func (p *Proxy) next(n, sent int64, faults *[]Fault) (int64, *Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k, which := n, 0
	if fs := *faults; len(fs) > 0 && fs[0].After-sent < k {
		k, which = max(fs[0].After-sent, 0), 1
	}
	if len(p.total) > 0 && p.total[0].After-p.st.Down < k {
		k, which = max(p.total[0].After-p.st.Down, 0), 2
	}
	p.st.Down += k
	switch which {
	case 1:
		f := (*faults)[0]
		*faults = (*faults)[1:]
		return k, &f
	case 2:
		f := p.total[0]
		p.total = p.total[1:]
		return k, &f
	}
	return k, nil
}
