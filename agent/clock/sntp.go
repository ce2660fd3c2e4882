package clock

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"
)

// packetLen is the size of an NTP packet without extension fields or
// authenticator (RFC 4330 section 4).
const packetLen = 48

// Modes of the NTP header.
const (
	modeClient = 3
	modeServer = 4
)

// ntpEpoch is where NTP era 0 starts; era 1 starts in 2036, when the
// 32-bit seconds field wraps.
var ntpEpoch = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)

// ntpTime is a 64-bit NTP timestamp: seconds since 1900 in the upper 32
// bits, fractions of a second in the lower 32.
type ntpTime uint64

// toNTP converts t; times from 2036 on wrap into era 1 as RFC 4330
// section 3 describes.
func toNTP(t time.Time) ntpTime {
	d := t.Sub(ntpEpoch) // saturates in 2192, after era 1
	secs := uint64(d / time.Second)
	frac := uint64(d%time.Second) << 32 / uint64(time.Second)
	return ntpTime(secs<<32 | frac)
}

// Time converts an NTP timestamp: a set top bit of the seconds means era
// 0 (1968–2036), a clear one era 1 (2036–2104), per RFC 4330 section 3.
func (n ntpTime) Time() time.Time {
	secs := int64(n >> 32)
	if secs&0x80000000 == 0 {
		secs += 1 << 32
	}
	nanos := int64((uint64(n&0xffffffff)*uint64(time.Second) + 1<<31) >> 32)
	return ntpEpoch.Add(time.Duration(secs) * time.Second).Add(time.Duration(nanos))
}

// packet is the header of an NTP packet, fields in wire order.
type packet struct {
	LeapVersionMode uint8   // leap indicator (2 bits), version (3), mode (3)
	Stratum         uint8   // 0 = kiss-o'-death, 1 = primary, 2–15 secondary, 16 unsynchronized
	Poll            int8    // log2 of the poll interval
	Precision       int8    // log2 of the clock precision
	RootDelay       uint32  // 16.16 seconds
	RootDispersion  uint32  // 16.16 seconds
	ReferenceID     [4]byte // kiss code when stratum is 0
	Reference       ntpTime // when the server's clock was last set
	Originate       ntpTime // the client's Transmit, echoed
	Receive         ntpTime // when the request reached the server (T2)
	Transmit        ntpTime // when the reply left the server (T3)
}

func (p *packet) leap() uint8    { return p.LeapVersionMode >> 6 }
func (p *packet) version() uint8 { return p.LeapVersionMode >> 3 & 7 }
func (p *packet) mode() uint8    { return p.LeapVersionMode & 7 }

func (p *packet) marshal() []byte {
	b := make([]byte, packetLen)
	b[0], b[1], b[2], b[3] = p.LeapVersionMode, p.Stratum, byte(p.Poll), byte(p.Precision)
	binary.BigEndian.PutUint32(b[4:], p.RootDelay)
	binary.BigEndian.PutUint32(b[8:], p.RootDispersion)
	copy(b[12:16], p.ReferenceID[:])
	binary.BigEndian.PutUint64(b[16:], uint64(p.Reference))
	binary.BigEndian.PutUint64(b[24:], uint64(p.Originate))
	binary.BigEndian.PutUint64(b[32:], uint64(p.Receive))
	binary.BigEndian.PutUint64(b[40:], uint64(p.Transmit))
	return b
}

// KissError is a server's kiss-o'-death: it asks the client to slow down
// (RATE) or go away (DENY, RSTR).
type KissError struct{ Code string }

func (e *KissError) Error() string { return fmt.Sprintf("server sent kiss-o'-death %q", e.Code) }

// parseReply decodes a server's reply to a request that carried sent as
// its Transmit timestamp and checks it as RFC 4330 section 5 asks. The
// reply is untrusted network input: parseReply never panics.
func parseReply(b []byte, sent ntpTime) (*packet, error) {
	if len(b) < packetLen {
		return nil, fmt.Errorf("reply of %d bytes, an NTP packet has at least %d", len(b), packetLen)
	}
	p := &packet{
		LeapVersionMode: b[0], Stratum: b[1], Poll: int8(b[2]), Precision: int8(b[3]),
		RootDelay:      binary.BigEndian.Uint32(b[4:]),
		RootDispersion: binary.BigEndian.Uint32(b[8:]),
		Reference:      ntpTime(binary.BigEndian.Uint64(b[16:])),
		Originate:      ntpTime(binary.BigEndian.Uint64(b[24:])),
		Receive:        ntpTime(binary.BigEndian.Uint64(b[32:])),
		Transmit:       ntpTime(binary.BigEndian.Uint64(b[40:])),
	}
	copy(p.ReferenceID[:], b[12:16])
	switch {
	case p.mode() != modeServer:
		return nil, fmt.Errorf("reply has mode %d, want %d (server)", p.mode(), modeServer)
	case p.version() < 1 || p.version() > 4:
		return nil, fmt.Errorf("reply has NTP version %d", p.version())
	case p.Originate != sent:
		// Not an answer to our request: late, duplicated or forged.
		return nil, errors.New("reply does not echo our transmit timestamp")
	case p.Stratum == 0:
		return nil, &KissError{Code: string(p.ReferenceID[:])}
	case p.leap() == 3 || p.Stratum > 15:
		return nil, errors.New("server clock is not synchronized")
	case p.Transmit == 0 || p.Receive == 0:
		return nil, errors.New("reply has no receive or transmit timestamp")
	}
	return p, nil
}

// offsetDelay computes the clock offset and the round-trip delay from the
// four timestamps of an exchange (RFC 4330 section 5): t1 request sent,
// t2 request received, t3 reply sent (server clock), t4 reply received.
// A positive offset means the local clock is behind.
func offsetDelay(t1, t2, t3, t4 time.Time) (offset, delay time.Duration) {
	offset = (t2.Sub(t1) + t3.Sub(t4)) / 2
	delay = t4.Sub(t1) - t3.Sub(t2)
	return offset, max(delay, 0)
}

// Sample is the result of one SNTP exchange.
type Sample struct {
	Server  string        // the address queried
	Name    string        // the configured server it stands for (Server for Query)
	Offset  time.Duration // add to the local clock to get the server's
	Delay   time.Duration // round trip, minus the server's processing
	Stratum int
}

// queryTimeout bounds one exchange with one server.
var queryTimeout = 5 * time.Second

// Query does one SNTP exchange with the server at addr ("host:port"),
// from a socket of its own (a fresh source port). The request's transmit
// timestamp is 64 random bits, not the local time (as NTP's data
// minimisation draft and chrony do): the reply must echo them, so a
// forged reply needs to see the request, and the request says nothing of
// the local clock. The offset is measured against the local clock (now).
func Query(ctx context.Context, addr string) (Sample, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return Sample{}, err
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	go func() { <-ctx.Done(); conn.SetDeadline(time.Unix(1, 0)) }()

	var nonce [8]byte
	rand.Read(nonce[:]) // never fails (crypto/rand since Go 1.24)
	sent := ntpTime(binary.BigEndian.Uint64(nonce[:]))
	req := packet{LeapVersionMode: 0<<6 | 4<<3 | modeClient, Transmit: sent}
	start := now()     // t1 on the clock being corrected
	mono := time.Now() // measures t4 - t1, immune to clock steps meanwhile
	if _, err := conn.Write(req.marshal()); err != nil {
		return Sample{}, err
	}
	buf := make([]byte, 512)
	var lastErr error
	for {
		n, err := conn.Read(buf)
		if err != nil {
			if lastErr != nil {
				return Sample{}, fmt.Errorf("%s: %w", addr, lastErr)
			}
			if ctx.Err() != nil {
				return Sample{}, fmt.Errorf("no reply from %s: %w", addr, ctx.Err())
			}
			return Sample{}, err
		}
		end := start.Add(time.Since(mono)) // t4
		p, err := parseReply(buf[:n], sent)
		if err != nil {
			var kiss *KissError
			if errors.As(err, &kiss) {
				return Sample{}, fmt.Errorf("%s: %w", addr, err)
			}
			lastErr = err
			continue // a stray or forged packet: wait for the real reply
		}
		off, delay := offsetDelay(start, p.Receive.Time(), p.Transmit.Time(), end)
		return Sample{Server: addr, Name: addr, Offset: off, Delay: delay, Stratum: int(p.Stratum)}, nil
	}
}
