package tftp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// testServer is a Server on 127.0.0.1 serving a temporary directory.
type testServer struct {
	addr      *net.UDPAddr
	transfers chan Transfer // what OnTransfer received
	logs      *syncBuffer
	stop      func() error // cancels Serve and returns what it returned
}

// startServer serves dir with a short timeout; configure, if set,
// changes the Server before it starts.
func startServer(t *testing.T, dir string, configure func(*Server)) *testServer {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, conn, dir, configure)
}

// serveOn is startServer on the socket conn.
func serveOn(t *testing.T, conn net.PacketConn, dir string, configure func(*Server)) *testServer {
	t.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	ts := &testServer{addr: conn.LocalAddr().(*net.UDPAddr), transfers: make(chan Transfer, 1000), logs: &syncBuffer{}}
	s := &Server{
		Root:       root,
		Log:        slog.New(slog.NewTextHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Timeout:    100 * time.Millisecond,
		OnTransfer: func(tr Transfer) { ts.transfers <- tr },
	}
	if configure != nil {
		configure(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, conn) }()
	var once sync.Once
	var serveErr error
	ts.stop = func() error {
		once.Do(func() { cancel(); serveErr = <-done })
		return serveErr
	}
	t.Cleanup(func() {
		if err := ts.stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", ts.logs)
		}
	})
	return ts
}

// next returns the next transfer the server reported.
func (ts *testServer) next(t *testing.T) Transfer {
	t.Helper()
	select {
	case tr := <-ts.transfers:
		return tr
	case <-time.After(10 * time.Second):
		t.Fatal("no transfer reported in 10s")
		return Transfer{}
	}
}

// syncBuffer is a bytes.Buffer the server's goroutines can log to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// checkFile fails the test unless res is the whole of want, sent without
// repeats in the blocks of size blockSize.
func checkFile(t *testing.T, res result, want []byte, blockSize int) {
	t.Helper()
	if res.errCode >= 0 {
		t.Fatalf("got ERROR %d %q, want the file", res.errCode, res.errMsg)
	}
	if got, sum := sha256.Sum256(res.data), sha256.Sum256(want); got != sum || len(res.data) != len(want) {
		t.Fatalf("got %d bytes with sha256 %x, want %d bytes with sha256 %x", len(res.data), got, len(want), sum)
	}
	// One more block than fit in the size: the last is short, possibly empty.
	if got, want := res.packets-res.repeats-res.dropped, len(want)/blockSize+1; got != want {
		t.Errorf("got %d blocks, want %d", got, want)
	}
}

func TestGet(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir, nil)
	for _, tt := range []struct {
		name      string
		size      int
		options   []string
		blockSize int
	}{
		{"empty", 0, nil, 512},
		{"one byte short of a block", 511, nil, 512},
		{"one block, then an empty one", 512, nil, 512},
		{"one byte over a block", 513, nil, 512},
		{"multiple of blksize 1468", 3 * 1468, []string{"blksize", "1468"}, 1468},
		{"blksize 8", 100, []string{"blksize", "8"}, 8},
		{"blksize above the cap", 5000, []string{"blksize", "9000"}, 1468},
		{"windowsize 4", 20*512 + 7, []string{"windowsize", "4"}, 512},
		{"windowsize, multiple of the window", 8 * 1024, []string{"blksize", "1024", "windowsize", "4"}, 1024},
	} {
		t.Run(tt.name, func(t *testing.T) {
			name := strings.ReplaceAll(tt.name, " ", "-")
			want := writeFile(t, dir, name, tt.size)
			res := testClient{options: tt.options}.get(t, ts.addr, name)
			checkFile(t, res, want, tt.blockSize)
			tr := ts.next(t)
			if tr.Err != nil || tr.File != name || tr.Size != int64(tt.size) || tr.Bytes != int64(tt.size) || tr.BlockSize != tt.blockSize {
				t.Errorf("transfer %+v, want %q complete with %d bytes in blocks of %d", tr, name, tt.size, tt.blockSize)
			}
		})
	}
}

func TestGetNames(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "boot", "efi"), 0o755); err != nil {
		t.Fatal(err)
	}
	want := writeFile(t, dir, "boot/efi/grubx64.efi", 3000)
	if err := os.Symlink("boot/efi/grubx64.efi", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, dir, nil)
	for _, name := range []string{
		"boot/efi/grubx64.efi",
		"/boot/efi/grubx64.efi", // as PXE firmware sends it
		"//boot/efi/grubx64.efi",
		"link", // a symbolic link inside the root
	} {
		t.Run(name, func(t *testing.T) {
			checkFile(t, testClient{}.get(t, ts.addr, name), want, 512)
			if tr := ts.next(t); tr.Err != nil {
				t.Error(tr.Err)
			}
		})
	}
}

// TestAddressFamilies serves on IPv6 loopback, and on a dual-stack
// wildcard socket to an IPv4 client, whose replies must go out through
// a dual-stack transfer socket too.
func TestAddressFamilies(t *testing.T) {
	dir := t.TempDir()
	want := writeFile(t, dir, "f", 1000)
	for _, tt := range []struct {
		name, network, listen string
		server                net.IP // where the client sends its request
	}{
		{"ipv6", "udp6", "[::1]:0", net.IPv6loopback},
		{"dual-stack", "udp", ":0", net.IPv4(127, 0, 0, 1)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.ListenPacket(tt.network, tt.listen)
			if err != nil {
				t.Skipf("no %s socket on %s here: %v", tt.network, tt.listen, err)
			}
			ts := serveOn(t, conn, dir, nil)
			addr := &net.UDPAddr{IP: tt.server, Port: ts.addr.Port}
			checkFile(t, testClient{}.get(t, addr, "f"), want, 512)
			tr := ts.next(t)
			if tr.Err != nil || !tr.Client.Addr().Is4() && tt.server.To4() != nil {
				t.Errorf("transfer %v, want it complete, from an IPv4 address written as one", tr)
			}
		})
	}
}

// TestRollover sends a file of more than 65535 blocks of 512 bytes, whose
// block numbers roll over from 65535 to 0, as iPXE and EDK2 expect.
func TestRollover(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 32 MiB over loopback")
	}
	dir := t.TempDir()
	want := writeFile(t, dir, "big", 65537*512+100)
	ts := startServer(t, dir, nil)
	for _, tt := range []struct {
		name    string
		options []string
	}{
		{"lock-step", nil},
		{"windowsize 16", []string{"windowsize", "16"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := testClient{options: tt.options}.get(t, ts.addr, "big")
			checkFile(t, res, want, 512)
			if tr := ts.next(t); tr.Err != nil || tr.Bytes != int64(len(want)) {
				t.Errorf("transfer %v, want %d bytes", tr, len(want))
			}
		})
	}
}

func TestOptions(t *testing.T) {
	dir := t.TempDir()
	want := writeFile(t, dir, "f", 4000)
	ts := startServer(t, dir, nil)
	for _, tt := range []struct {
		name    string
		options []string
		oack    map[string]string // nil: no OACK, the file starts at once
	}{
		{"tsize", []string{"tsize", "0"}, map[string]string{"tsize": "4000"}},
		{"tsize and blksize", []string{"tsize", "0", "blksize", "1432"}, map[string]string{"tsize": "4000", "blksize": "1432"}},
		{"names without case", []string{"TSize", "0", "BLKSIZE", "1024"}, map[string]string{"tsize": "4000", "blksize": "1024"}},
		{"blksize capped", []string{"blksize", "65464"}, map[string]string{"blksize": "1468"}},
		{"blksize too small", []string{"blksize", "7"}, nil},
		{"blksize not a number", []string{"blksize", "+512"}, nil},
		{"timeout", []string{"timeout", "3"}, map[string]string{"timeout": "3"}},
		{"timeout 0", []string{"timeout", "0"}, nil},
		{"timeout 256", []string{"timeout", "256"}, nil},
		{"windowsize capped", []string{"windowsize", "1000"}, map[string]string{"windowsize": "16"}},
		{"windowsize 0", []string{"windowsize", "0"}, nil},
		{"unknown option", []string{"multicast", ""}, nil},
		{"unknown and known", []string{"multicast", "", "tsize", "0"}, map[string]string{"tsize": "4000"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := testClient{options: tt.options}.get(t, ts.addr, "f")
			if (res.oack == nil) != (tt.oack == nil) || len(res.oack) != len(tt.oack) {
				t.Errorf("OACK %v, want %v", res.oack, tt.oack)
			}
			for k, v := range tt.oack {
				if res.oack[k] != v {
					t.Errorf("OACK %s=%q, want %q", k, res.oack[k], v)
				}
			}
			bs := 512
			if v, ok := res.oack["blksize"]; ok {
				bs, _ = strconv.Atoi(v)
			}
			checkFile(t, res, want, bs)
			if tr := ts.next(t); tr.Err != nil {
				t.Error(tr.Err)
			}
		})
	}
}

// TestSizeProbe plays UEFI firmware (EDK2): it asks the size, answers the
// OACK with an ERROR, then asks the file. The first is a size query, not
// a failure, and is not logged as one.
func TestSizeProbe(t *testing.T) {
	dir := t.TempDir()
	want := writeFile(t, dir, "grubx64.efi", 10000)
	ts := startServer(t, dir, nil)

	res := testClient{options: []string{"tsize", "0"}, abortAfterOACK: true}.get(t, ts.addr, "/grubx64.efi")
	if res.oack["tsize"] != "10000" || res.packets != 0 {
		t.Errorf("size query: OACK %v and %d DATA packets, want tsize 10000 and none", res.oack, res.packets)
	}
	tr := ts.next(t)
	if !tr.SizeProbe || tr.Err != nil || tr.Size != 10000 {
		t.Errorf("size query reported as %+v, want a size probe of 10000 bytes without error", tr)
	}

	res = testClient{options: []string{"tsize", "0", "blksize", "1468"}}.get(t, ts.addr, "/grubx64.efi")
	checkFile(t, res, want, 1468)
	if tr := ts.next(t); tr.SizeProbe || tr.Err != nil {
		t.Errorf("download reported as %+v", tr)
	}
	if logs := ts.logs.String(); strings.Contains(logs, "level=WARN") || strings.Contains(logs, "failed") {
		t.Errorf("the size query was logged as a failure:\n%s", logs)
	}
}

func TestLostAck(t *testing.T) {
	dir := t.TempDir()
	want := writeFile(t, dir, "f", 3000)
	ts := startServer(t, dir, func(s *Server) { s.Timeout = 50 * time.Millisecond })
	for _, tt := range []struct {
		name    string
		options []string
		block   uint16
	}{
		{"data", nil, 2},
		{"oack", []string{"tsize", "0"}, 0},
		{"last", nil, 6},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := testClient{options: tt.options, dropAck: once(tt.block)}.get(t, ts.addr, "f")
			checkFile(t, res, want, 512)
			tr := ts.next(t)
			if tt.block == 6 {
				// The client has all of the file and does not wait for the
				// repeat; the server gives up on the lost last ACK.
				if tr.Err == nil || tr.Bytes != 2560 {
					t.Errorf("transfer %v, want a timeout with 2560 bytes acknowledged", tr)
				}
				return
			}
			if tr.Err != nil || tr.Retransmits != 1 {
				t.Errorf("transfer %v, want it complete after 1 retransmission", tr)
			}
			if tt.block != 0 && res.repeats != 1 {
				t.Errorf("client received %d repeated blocks, want 1", res.repeats)
			}
		})
	}
}

// TestDuplicateAcks checks the cure of the Sorcerer's Apprentice bug: a
// client that acknowledges every block twice still gets each block once.
func TestDuplicateAcks(t *testing.T) {
	dir := t.TempDir()
	want := writeFile(t, dir, "f", 10*512+1)
	ts := startServer(t, dir, func(s *Server) { s.Timeout = 5 * time.Second })
	res := testClient{options: []string{"tsize", "0"}, doubleAcks: true}.get(t, ts.addr, "f")
	checkFile(t, res, want, 512)
	if res.repeats != 0 {
		t.Errorf("client received %d repeated blocks, want none", res.repeats)
	}
	if tr := ts.next(t); tr.Err != nil || tr.Retransmits != 0 {
		t.Errorf("transfer %v, want it complete without retransmission", tr)
	}
}

// TestWindowLoss loses a block in the middle of a window: the client
// acknowledges the blocks before it and the server resends from there.
func TestWindowLoss(t *testing.T) {
	dir := t.TempDir()
	want := writeFile(t, dir, "f", 30*512)
	ts := startServer(t, dir, func(s *Server) { s.Timeout = 50 * time.Millisecond })
	res := testClient{options: []string{"windowsize", "4"}, dropData: once(6)}.get(t, ts.addr, "f")
	checkFile(t, res, want, 512)
	if tr := ts.next(t); tr.Err != nil || tr.WindowSize != 4 {
		t.Errorf("transfer %v, want it complete with windowsize 4", tr)
	}
}

// TestStranger sends an ACK to a transfer's port from another port: it
// gets "unknown transfer ID" and the transfer goes on.
func TestStranger(t *testing.T) {
	dir := t.TempDir()
	want := writeFile(t, dir, "f", 3000)
	ts := startServer(t, dir, func(s *Server) { s.Timeout = 5 * time.Second })
	stranger, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	code := -1
	res := testClient{onData: func(server *net.UDPAddr, block uint16) {
		if block != 2 {
			return
		}
		stranger.WriteToUDP([]byte{0, 4, 0, 2}, server)
		stranger.SetReadDeadline(time.Now().Add(2 * time.Second))
		b := make([]byte, 100)
		if n, _, err := stranger.ReadFromUDP(b); err == nil && n >= 4 && b[1] == 5 {
			code = int(binary.BigEndian.Uint16(b[2:]))
		}
	}}.get(t, ts.addr, "f")
	if code != int(CodeUnknownTID) {
		t.Errorf("stranger got ERROR %d, want %d", code, CodeUnknownTID)
	}
	checkFile(t, res, want, 512)
	if res.repeats != 0 {
		t.Errorf("client received %d repeated blocks, want none", res.repeats)
	}
	if tr := ts.next(t); tr.Err != nil {
		t.Error(tr.Err)
	}
}

// TestRefused asks for what the server must not send: no request gets
// any data.
func TestRefused(t *testing.T) {
	outside := t.TempDir()
	writeFile(t, outside, "secret", 100)
	dir := t.TempDir()
	writeFile(t, dir, "hello", 100)
	if err := os.Mkdir(filepath.Join(dir, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{
		"escape":   filepath.Join(outside, "secret"),
		"relative": "../" + filepath.Base(outside) + "/secret",
		"absolute": filepath.Join(dir, "hello"), // os.Root refuses absolute links, even inside
	} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	ts := startServer(t, dir, nil)
	for _, tt := range []struct {
		name   string
		client testClient
		file   string
		code   ErrorCode
		msg    string // in the ERROR's message
		record bool   // reported to OnTransfer
	}{
		{"dot-dot", testClient{}, "../" + filepath.Base(outside) + "/secret", CodeAccessViolation, "access violation", true},
		{"slash dot-dot", testClient{}, "/../x", CodeAccessViolation, "access violation", true},
		{"dot-dot inside", testClient{}, "dir/../../x", CodeAccessViolation, "access violation", true},
		{"dot", testClient{}, "./hello", CodeAccessViolation, "access violation", true},
		{"backslash", testClient{}, `dir\hello`, CodeAccessViolation, "access violation", true},
		{"control character", testClient{}, "hel\x01lo", CodeAccessViolation, "access violation", true},
		{"root itself", testClient{}, "/", CodeAccessViolation, "access violation", true},
		{"symlink out", testClient{}, "escape", CodeAccessViolation, "access violation", true},
		{"relative symlink out", testClient{}, "relative", CodeAccessViolation, "access violation", true},
		{"absolute symlink", testClient{}, "absolute", CodeAccessViolation, "access violation", true},
		{"directory", testClient{}, "dir", CodeAccessViolation, "access violation", true},
		{"missing", testClient{}, "pxelinux.cfg/default", CodeFileNotFound, "file not found", true},
		{"write request", testClient{op: 2}, "hello", CodeAccessViolation, "read-only server", true},
		{"netascii", testClient{mode: "netascii"}, "hello", CodeIllegalOperation, "octet", true},
		{"unknown mode", testClient{mode: "binary"}, "hello", CodeIllegalOperation, "mode", false},
		{"empty name", testClient{}, "", CodeIllegalOperation, "empty", false},
		{"data to the server port", testClient{op: 3}, "hello", CodeIllegalOperation, "not a request", false},
		{"unknown opcode", testClient{op: 99}, "hello", CodeIllegalOperation, "not a request", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := tt.client.get(t, ts.addr, tt.file)
			if res.packets != 0 || len(res.data) != 0 {
				t.Fatalf("got %d DATA packets, want none", res.packets)
			}
			if res.errCode != int(tt.code) || !strings.Contains(res.errMsg, tt.msg) {
				t.Errorf("got ERROR %d %q, want %d with %q", res.errCode, res.errMsg, tt.code, tt.msg)
			}
			if !tt.record {
				return
			}
			tr := ts.next(t)
			t.Log(tr)
			if tr.Err == nil || tr.Bytes != 0 {
				t.Errorf("transfer %v, want an error", tr)
			}
			if got, want := errors.Is(tr.Err, fs.ErrNotExist), tt.code == CodeFileNotFound; got != want {
				t.Errorf("errors.Is(%v, fs.ErrNotExist) = %v, want %v", tr.Err, got, want)
			}
		})
	}
	if logs := ts.logs.String(); strings.Contains(logs, "secret\"") && strings.Contains(logs, "file sent") {
		t.Errorf("a file outside the root was sent:\n%s", logs)
	}
}

// stall requests file and receives its first packet without answering,
// which holds a transfer open until the server gives up.
func stall(t *testing.T, addr *net.UDPAddr, file string) {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.WriteToUDP(append([]byte{0, 1}, file+"\x00octet\x00"...), addr)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 1000)
	if _, _, err := conn.ReadFromUDP(b); err != nil || b[1] != byte(OpDATA) {
		t.Fatalf("stall %q: %v, packet % x", file, err, b[:4])
	}
}

func TestBusy(t *testing.T) {
	dir := t.TempDir()
	want := writeFile(t, dir, "f", 3000)
	ts := startServer(t, dir, func(s *Server) {
		s.MaxTransfers = 1
		s.Timeout = 200 * time.Millisecond
		s.Retries = 1
	})
	stall(t, ts.addr, "f")
	res := testClient{}.get(t, ts.addr, "f")
	if res.errCode != int(CodeNotDefined) || !strings.Contains(res.errMsg, "busy") {
		t.Errorf("second transfer got ERROR %d %q, want 0 busy", res.errCode, res.errMsg)
	}
	if tr := ts.next(t); tr.Err == nil || !strings.Contains(tr.Err.Error(), "no acknowledgement") || tr.Retransmits != 1 {
		t.Errorf("stalled transfer %v, want a timeout after 1 retransmission", tr)
	}
	checkFile(t, testClient{}.get(t, ts.addr, "f"), want, 512)
	ts.next(t)
}

// TestRepeatedRequest sends a request twice, as a client does that hears
// nothing soon enough: one transfer answers.
func TestRepeatedRequest(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "f", 100)
	ts := startServer(t, dir, func(s *Server) { s.Timeout = 5 * time.Second })
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rrq := []byte("\x00\x01f\x00octet\x00")
	conn.WriteToUDP(rrq, ts.addr)
	conn.WriteToUDP(rrq, ts.addr)
	b := make([]byte, 1000)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, server, err := conn.ReadFromUDP(b)
	if err != nil || b[1] != byte(OpDATA) {
		t.Fatalf("%v, packet % x", err, b[:4])
	}
	conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, from, err := conn.ReadFromUDP(b); err == nil {
		t.Errorf("second packet % x from %v, want none", b[:min(n, 4)], from)
	}
	conn.WriteToUDP([]byte{0, 4, 0, 1}, server)
	if tr := ts.next(t); tr.Err != nil {
		t.Error(tr.Err)
	}
	select {
	case tr := <-ts.transfers:
		t.Errorf("second transfer %v, want none", tr)
	case <-time.After(100 * time.Millisecond):
	}
}

// TestStop cancels Serve during a transfer: it returns at once and the
// transfer is reported as stopped.
func TestStop(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "f", 3000)
	ts := startServer(t, dir, func(s *Server) { s.Timeout = time.Minute })
	stall(t, ts.addr, "f")
	start := time.Now()
	if err := ts.stop(); err != nil {
		t.Errorf("Serve returned %v, want nil", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Serve took %v to return", d)
	}
	if tr := ts.next(t); !errors.Is(tr.Err, errServerStopped) {
		t.Errorf("transfer %v, want it stopped", tr)
	}
}

// TestFailureLogLimit floods the server with malformed requests: the log
// gets a burst, not one line each.
func TestFailureLogLimit(t *testing.T) {
	ts := startServer(t, t.TempDir(), nil)
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	b := make([]byte, 100)
	for range 3 * failureBurst {
		conn.WriteToUDP([]byte{0, 1, 'x'}, ts.addr)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := conn.ReadFromUDP(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := ts.stop(); err != nil {
		t.Fatal(err)
	}
	logs := ts.logs.String()
	if n := strings.Count(logs, "malformed request"); n < failureBurst || n > failureBurst+2 {
		t.Errorf("%d lines about malformed requests, want about %d:\n%s", n, failureBurst, logs)
	}
	if !strings.Contains(logs, "dropped=") {
		t.Errorf("no summary of the lines dropped:\n%s", logs)
	}
}

func TestServeChecks(t *testing.T) {
	root, err := os.OpenRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	for _, tt := range []struct {
		s    *Server
		want string
	}{
		{&Server{}, "Server.Root is nil"},
		{&Server{Root: root, MaxBlockSize: 4}, "MaxBlockSize is 4"},
		{&Server{Root: root, MaxWindowSize: 70000}, "MaxWindowSize is 70000"},
		{&Server{Root: root, Timeout: -time.Second}, "Timeout is -1s"},
	} {
		conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if err := tt.s.Serve(context.Background(), conn); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Serve: %v, want an error with %q", err, tt.want)
		}
	}
}
