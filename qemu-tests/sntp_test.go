package qemutests

import (
	"encoding/binary"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/qemu-tests/qemu"
)

// liar is an SNTP server on the host's loopback (10.0.2.2 from a guest)
// that answers every query, correctly echoed, with a time ahead by a
// fixed offset: an attacker who sees the node's queries and answers
// before the real servers do.
type liar struct {
	pc     net.PacketConn
	offset time.Duration
}

// startLiar serves SNTP on a free UDP port of 127.0.0.1, offset ahead.
func startLiar(offset time.Duration) (*liar, error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l := &liar{pc: pc, offset: offset}
	go l.serve()
	return l, nil
}

// Port is the UDP port the liar answers on.
func (l *liar) Port() int { return l.pc.LocalAddr().(*net.UDPAddr).Port }

func (l *liar) Close() { l.pc.Close() }

func (l *liar) serve() {
	buf := make([]byte, 512)
	for {
		n, peer, err := l.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if n < 48 || buf[0]&7 != 3 { // client mode
			continue
		}
		var reply [48]byte
		reply[0] = 4<<3 | 4 // version 4, server mode
		reply[1] = 1        // stratum 1: a primary server, the most believable
		copy(reply[12:16], "GPS\x00")
		now := ntpStamp(time.Now().Add(l.offset))
		binary.BigEndian.PutUint64(reply[16:], now)
		copy(reply[24:32], buf[40:48]) // originate = the query's transmit
		binary.BigEndian.PutUint64(reply[32:], now)
		binary.BigEndian.PutUint64(reply[40:], now)
		l.pc.WriteTo(reply[:], peer)
	}
}

// ntpStamp is t as a 64-bit NTP timestamp: the seconds wrap into era 1
// in 2036.
func ntpStamp(t time.Time) uint64 {
	d := t.Sub(time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC))
	secs := uint64(d/time.Second) % (1 << 32)
	frac := uint64(d%time.Second) << 32 / uint64(time.Second)
	return secs<<32 | frac
}

// checkTimeAttack asserts that the node, whose only NTP server is the
// liar (10 years ahead), kept its clock and its floor, said why, and that
// its administrator can set the clock through the API.
func checkTimeAttack(t *testing.T, vm *qemu.VM, config string) {
	t.Helper()
	c := apiClient(t, vm, config)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		cs, err := c.Clock(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if cs.Refused != nil {
			t.Logf("clock: source %s, trusted %v, floor %s; refused %v: %s", cs.Source, cs.Trusted, cs.Floor.Format(time.RFC3339), cs.Refused.Offset.Round(time.Hour), cs.Refused.Reason)
			if skew := time.Since(cs.Time).Abs(); skew > time.Minute {
				t.Errorf("the node's clock is %v off the host's after the liar's answers", skew)
			}
			if cs.Refused.Offset < 9*365*24*time.Hour {
				t.Errorf("refused step %v, want the liar's 10 years", cs.Refused.Offset)
			}
			if cs.Floor.After(time.Now().Add(time.Hour)) || cs.Synced {
				t.Errorf("the liar raised the floor to %s (synced %v): a reboot would keep its time", cs.Floor, cs.Synced)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no refused step in 2 min with only a liar to ask: %+v", cs)
		}
		time.Sleep(3 * time.Second)
	}
	// The administrator fixes the clock from the workstation.
	out, err := exec.Command(filepath.Join(binDir, "cairn"), "node", "--config", config, "--server", fmt.Sprintf("127.0.0.1:%d", vm.HostPort(api.DefaultPort)), "clock", "set").CombinedOutput()
	if err != nil {
		t.Fatalf("cairn node clock set: %v\n%s", err, out)
	}
	cs, err := c.Clock(t.Context())
	if err != nil || cs.Source != "admin" || !cs.Trusted || time.Since(cs.Time).Abs() > 10*time.Second {
		t.Errorf("after clock set: %+v, %v\n%s", cs, err, out)
	}
	if !strings.Contains(string(out), "set") {
		t.Logf("cairn node clock set said:\n%s", out)
	}
}
