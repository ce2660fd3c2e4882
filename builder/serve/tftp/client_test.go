package tftp

import (
	"bytes"
	"encoding/binary"
	"net"
	"os"
	"strconv"
	"testing"
	"time"
)

// testClient is a small TFTP client with hooks to misbehave. It encodes
// and decodes packets itself, so that it does not share the server's
// bugs.
type testClient struct {
	op      uint16   // 0 means RRQ
	mode    string   // "" means octet
	options []string // name, value, name, value...

	// abortAfterOACK answers the OACK with an ERROR, as EDK2 does after
	// asking the size.
	abortAfterOACK bool
	// dropAck, if set, is asked before each ACK; true drops it.
	dropAck func(block uint16) bool
	// dropData, if set, is asked for each DATA received; true drops it.
	dropData func(block uint16) bool
	// doubleAcks sends every ACK twice.
	doubleAcks bool
	// onData, if set, is called with the server's transfer address after
	// each DATA kept.
	onData func(server *net.UDPAddr, block uint16)
}

// result is what the client received.
type result struct {
	data      []byte
	oack      map[string]string // nil if no OACK came
	packets   int               // DATA packets received, repeats included
	repeats   int               // DATA packets received again
	dropped   int               // DATA packets dropped by dropData
	errCode   int               // code of the ERROR received, -1 if none
	errMsg    string
	serverTID *net.UDPAddr
}

// get requests file from the server at addr and receives it. It fails
// the test on a timeout, not on an ERROR, which it returns.
func (c testClient) get(t *testing.T, addr *net.UDPAddr, file string) result {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: addr.IP})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	op, mode := c.op, c.mode
	if op == 0 {
		op = 1
	}
	if mode == "" {
		mode = "octet"
	}
	rrq := binary.BigEndian.AppendUint16(nil, op)
	for _, s := range append([]string{file, mode}, c.options...) {
		rrq = append(append(rrq, s...), 0)
	}
	if _, err := conn.WriteToUDP(rrq, addr); err != nil {
		t.Fatal(err)
	}

	res := result{errCode: -1}
	blockSize, window := 512, 1
	ack := func(block uint16) {
		if c.dropAck != nil && c.dropAck(block) {
			return
		}
		pkt := binary.BigEndian.AppendUint16([]byte{0, 4}, block)
		for range 1 + btoi(c.doubleAcks) {
			conn.WriteToUDP(pkt, res.serverTID)
		}
	}
	var received uint64 // blocks received in order
	sinceAck := 0       // blocks received since the last ACK
	buf := make([]byte, 65536)
	for {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := conn.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("get %q: %v (after %d blocks)", file, err, received)
		}
		if res.serverTID == nil {
			res.serverTID = from
		} else if from.Port != res.serverTID.Port {
			t.Errorf("get %q: packet from port %d during the transfer from port %d", file, from.Port, res.serverTID.Port)
			continue
		}
		pkt := buf[:n]
		switch binary.BigEndian.Uint16(pkt) {
		case 5: // ERROR
			res.errCode = int(binary.BigEndian.Uint16(pkt[2:]))
			res.errMsg = string(bytes.TrimRight(pkt[4:], "\x00"))
			return res
		case 6: // OACK
			fields := bytes.Split(bytes.TrimSuffix(pkt[2:], []byte{0}), []byte{0})
			res.oack = map[string]string{}
			for i := 0; i+1 < len(fields); i += 2 {
				res.oack[string(fields[i])] = string(fields[i+1])
			}
			if v, ok := res.oack["blksize"]; ok {
				blockSize, _ = strconv.Atoi(v)
			}
			if v, ok := res.oack["windowsize"]; ok {
				window, _ = strconv.Atoi(v)
			}
			if c.abortAfterOACK {
				conn.WriteToUDP(append([]byte{0, 5, 0, 8}, "User aborted download\x00"...), from)
				return res
			}
			ack(0)
		case 3: // DATA
			block, data := binary.BigEndian.Uint16(pkt[2:]), pkt[4:]
			res.packets++
			if c.dropData != nil && c.dropData(block) {
				res.dropped++
				continue
			}
			if block != uint16(received+1) {
				// A repeat (our ACK was lost) or a block after a gap in
				// the window: acknowledge what we have (RFC 1350, 7440).
				res.repeats++
				ack(uint16(received))
				sinceAck = 0
				continue
			}
			received++
			sinceAck++
			res.data = append(res.data, data...)
			if c.onData != nil {
				c.onData(from, block)
			}
			if len(data) < blockSize {
				ack(block)
				return res
			}
			if sinceAck == window {
				ack(block)
				sinceAck = 0
			}
		default:
			t.Fatalf("get %q: unexpected packet % x", file, pkt)
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// once returns a drop function that drops the given block the first
// time only.
func once(block uint16) func(uint16) bool {
	done := false
	return func(b uint16) bool {
		if b == block && !done {
			done = true
			return true
		}
		return false
	}
}

// writeFile writes a file of size pseudo-random bytes under dir.
func writeFile(t *testing.T, dir, name string, size int) []byte {
	t.Helper()
	b := make([]byte, size)
	var x uint32 = uint32(size) + 1
	for i := range b {
		// xorshift: cheap, and no two blocks alike, so a block sent twice
		// or out of order shows.
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	if err := os.WriteFile(dir+"/"+name, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}
