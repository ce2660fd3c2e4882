package clock

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testServer is an SNTP server on loopback whose clock runs offset ahead
// of the real one (time.Now, not the fake clock: it stands for true time).
type testServer struct {
	addr    string
	offset  atomic.Int64 // time.Duration
	drop    atomic.Int32 // requests left to ignore, as if offline
	stratum atomic.Int32
	queries atomic.Int32
	// forge sends, before each reply, one that does not echo the
	// request's transmit timestamp and claims a time 10 years ahead: a
	// spoofer guessing. forgeOnly sends only that one.
	forge, forgeOnly atomic.Bool

	mu        sync.Mutex
	transmits []ntpTime // the requests' transmit timestamps
	ports     []int     // their source ports
}

func newTestServer(t *testing.T, offset time.Duration) *testServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	s := &testServer{addr: pc.LocalAddr().String()}
	s.offset.Store(int64(offset))
	s.stratum.Store(2)
	go func() {
		buf := make([]byte, 512)
		for {
			n, peer, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			s.queries.Add(1)
			if s.drop.Load() > 0 {
				s.drop.Add(-1)
				continue
			}
			if n < packetLen || buf[0]&7 != modeClient {
				continue
			}
			recv := time.Now().Add(time.Duration(s.offset.Load()))
			orig := ntpTime(binary.BigEndian.Uint64(buf[40:48]))
			s.mu.Lock()
			s.transmits = append(s.transmits, orig)
			s.ports = append(s.ports, peer.(*net.UDPAddr).Port)
			s.mu.Unlock()
			if s.forge.Load() || s.forgeOnly.Load() {
				future := toNTP(time.Now().AddDate(10, 0, 0))
				forged := packet{LeapVersionMode: 4<<3 | modeServer, Stratum: 1, Originate: orig + 1, Receive: future, Transmit: future}
				pc.WriteTo(forged.marshal(), peer)
				if s.forgeOnly.Load() {
					continue
				}
			}
			reply := packet{
				LeapVersionMode: 0<<6 | 4<<3 | modeServer,
				Stratum:         uint8(s.stratum.Load()),
				ReferenceID:     [4]byte{'T', 'E', 'S', 'T'},
				Reference:       toNTP(recv.Add(-time.Minute)),
				Originate:       orig,
				Receive:         toNTP(recv),
				Transmit:        toNTP(time.Now().Add(time.Duration(s.offset.Load()))),
			}
			if reply.Stratum == 0 {
				reply.ReferenceID = [4]byte{'R', 'A', 'T', 'E'}
			}
			pc.WriteTo(reply.marshal(), peer)
		}
	}()
	return s
}

func TestNTPTime(t *testing.T) {
	for _, tt := range []struct {
		name string
		t    time.Time
	}{
		{"unix epoch", time.Unix(0, 0).UTC()},
		{"2026", time.Date(2026, 11, 22, 1, 2, 3, 456789000, time.UTC)},
		{"last second of era 0", time.Date(2036, 2, 7, 6, 28, 15, 0, time.UTC)},
		{"era 1", time.Date(2040, 1, 1, 0, 0, 0, 500000000, time.UTC)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := toNTP(tt.t).Time()
			if d := got.Sub(tt.t); d < -time.Nanosecond || d > time.Nanosecond {
				t.Errorf("round trip of %v = %v", tt.t, got)
			}
		})
	}
	// Era boundary: 2036-02-07T06:28:16Z wraps the seconds to 0.
	if got, want := ntpTime(0).Time(), time.Date(2036, 2, 7, 6, 28, 16, 0, time.UTC); !got.Equal(want) {
		t.Errorf("ntpTime(0) = %v, want %v (era 1)", got, want)
	}
}

func TestOffsetDelay(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }
	for _, tt := range []struct {
		name               string
		t1, t2, t3, t4     int // ms
		wantOffset, wantDl time.Duration
	}{
		{"in sync, 20 ms round trip", 0, 10, 10, 20, 0, 20 * time.Millisecond},
		{"local behind 1 s", 0, 1010, 1011, 21, 1000 * time.Millisecond, 20 * time.Millisecond},
		{"local ahead 5 s", 5000, 10, 12, 5022, -5000 * time.Millisecond, 20 * time.Millisecond},
		{"asymmetric path", 0, 30, 30, 40, 10 * time.Millisecond, 40 * time.Millisecond},
		{"server processing", 0, 10, 110, 120, 0, 20 * time.Millisecond},
		{"clock stepped: negative delay clamps", 0, 100, 300, 50, 175 * time.Millisecond, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			off, dl := offsetDelay(at(tt.t1), at(tt.t2), at(tt.t3), at(tt.t4))
			if off != tt.wantOffset || dl != tt.wantDl {
				t.Errorf("offsetDelay = %v, %v; want %v, %v", off, dl, tt.wantOffset, tt.wantDl)
			}
		})
	}
}

func TestParseReply(t *testing.T) {
	sent := toNTP(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	good := packet{LeapVersionMode: 4<<3 | modeServer, Stratum: 2, Originate: sent, Receive: sent + 1<<32, Transmit: sent + 1<<32 + 1}
	for _, tt := range []struct {
		name    string
		edit    func(p *packet)
		short   bool
		wantErr string
	}{
		{name: "good"},
		{name: "NTPv3", edit: func(p *packet) { p.LeapVersionMode = 3<<3 | modeServer }},
		{name: "short", short: true, wantErr: "at least 48"},
		{name: "client mode", edit: func(p *packet) { p.LeapVersionMode = 4<<3 | modeClient }, wantErr: "mode 3"},
		{name: "version 0", edit: func(p *packet) { p.LeapVersionMode = modeServer }, wantErr: "version 0"},
		{name: "not our request", edit: func(p *packet) { p.Originate++ }, wantErr: "does not echo"},
		{name: "kiss", edit: func(p *packet) { p.Stratum = 0; p.ReferenceID = [4]byte{'D', 'E', 'N', 'Y'} }, wantErr: `kiss-o'-death "DENY"`},
		{name: "alarm", edit: func(p *packet) { p.LeapVersionMode |= 3 << 6 }, wantErr: "not synchronized"},
		{name: "stratum 16", edit: func(p *packet) { p.Stratum = 16 }, wantErr: "not synchronized"},
		{name: "no transmit", edit: func(p *packet) { p.Transmit = 0 }, wantErr: "no receive or transmit"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := good
			if tt.edit != nil {
				tt.edit(&p)
			}
			b := p.marshal()
			if tt.short {
				b = b[:47]
			}
			got, err := parseReply(b, sent)
			if tt.wantErr == "" {
				if err != nil || *got != p {
					t.Fatalf("parseReply = %+v, %v; want %+v", got, err, p)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseReply error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// FuzzParseReply: replies come from the network.
func FuzzParseReply(f *testing.F) {
	sent := toNTP(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	good := packet{LeapVersionMode: 4<<3 | modeServer, Stratum: 2, Originate: sent, Receive: sent, Transmit: sent}
	f.Add(good.marshal(), uint64(sent))
	f.Add(make([]byte, 48), uint64(0))
	f.Add([]byte{0x24}, uint64(1))
	f.Fuzz(func(t *testing.T, b []byte, sent uint64) {
		p, err := parseReply(b, ntpTime(sent))
		if err != nil {
			return
		}
		if p.Originate != ntpTime(sent) || p.mode() != modeServer || p.Stratum == 0 || p.Stratum > 15 {
			t.Fatalf("accepted a reply it must refuse: %+v", p)
		}
		off, dl := offsetDelay(time.Now(), p.Receive.Time(), p.Transmit.Time(), time.Now())
		_, _ = off, dl
		if got := p.marshal(); string(got) != string(b[:packetLen]) {
			t.Fatalf("marshal(parse(b)) != b")
		}
	})
}

func TestQuery(t *testing.T) {
	srv := newTestServer(t, 3*time.Second)
	s, err := Query(context.Background(), srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	if d := s.Offset - 3*time.Second; d < -50*time.Millisecond || d > 50*time.Millisecond {
		t.Errorf("offset = %v, want 3s", s.Offset)
	}
	if s.Delay < 0 || s.Delay > 50*time.Millisecond || s.Stratum != 2 {
		t.Errorf("delay %v stratum %d", s.Delay, s.Stratum)
	}

	srv.stratum.Store(0)
	_, err = Query(context.Background(), srv.addr)
	var kiss *KissError
	if !errors.As(err, &kiss) || kiss.Code != "RATE" {
		t.Errorf("Query against a kissing server = %v, want a RATE KissError", err)
	}

	old := queryTimeout
	queryTimeout = 100 * time.Millisecond
	defer func() { queryTimeout = old }()
	srv.drop.Store(1)
	if _, err := Query(context.Background(), srv.addr); err == nil {
		t.Errorf("Query to a silent server succeeded")
	}
}

// TestQueryFreshAndRandom: every exchange comes from a new source port
// and carries a random transmit timestamp, not the local time.
func TestQueryFreshAndRandom(t *testing.T) {
	srv := newTestServer(t, 0)
	for range 3 {
		if _, err := Query(context.Background(), srv.addr); err != nil {
			t.Fatal(err)
		}
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for i := range srv.transmits {
		if d := srv.transmits[i].Time().Sub(time.Now()); d > -time.Minute && d < time.Minute {
			t.Errorf("request %d carried the local time %v as its transmit timestamp", i, srv.transmits[i].Time())
		}
		for j := range i {
			if srv.transmits[i] == srv.transmits[j] || srv.ports[i] == srv.ports[j] {
				t.Errorf("requests %d and %d share transmit %x or port %d", j, i, srv.transmits[i], srv.ports[i])
			}
		}
	}
}

// TestQueryForgedReply: a reply that does not echo the request's transmit
// timestamp is ignored, however early it comes.
func TestQueryForgedReply(t *testing.T) {
	old := queryTimeout
	queryTimeout = 200 * time.Millisecond
	defer func() { queryTimeout = old }()
	useFakeClock(t, time.Now())
	for _, tt := range []struct {
		name      string
		forgeOnly bool
		wantErr   string
	}{
		{name: "forged, then the real reply"},
		{name: "forged only", forgeOnly: true, wantErr: "does not echo our transmit timestamp"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t, time.Second)
			srv.forge.Store(true)
			srv.forgeOnly.Store(tt.forgeOnly)
			s, err := Query(context.Background(), srv.addr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Query = %+v, %v; want error %q", s, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := s.Offset - time.Second; d < -100*time.Millisecond || d > 100*time.Millisecond {
				t.Errorf("offset = %v, want the real reply's 1s", s.Offset)
			}
		})
	}
}
