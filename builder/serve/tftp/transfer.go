package tftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"
)

// Transfer is the record of one request, which Server.OnTransfer
// receives when it ends.
type Transfer struct {
	// Client is the client's address and port (its transfer ID).
	Client netip.AddrPort
	// File is the file name as the client sent it.
	File string
	// Size is the file's size, or -1 if it was not opened.
	Size int64
	// Bytes is how much of the file the client acknowledged: Size when
	// the transfer completed.
	Bytes int64
	// BlockSize and WindowSize are the negotiated block size (512 unless
	// the client asked) and window (1 unless the client asked).
	BlockSize, WindowSize int
	// Retransmits counts the packets sent again after a timeout: a
	// high count means a lossy network or a slow client.
	Retransmits int
	// SizeProbe is set when the client only asked the file's size: it
	// answered the OACK carrying tsize with an ERROR, as UEFI firmware
	// does before it requests the file again to download it. That is
	// not a failure, and Err is nil.
	SizeProbe bool
	// Start is when the request arrived; Duration how long it took.
	Start    time.Time
	Duration time.Duration
	// Err is why the transfer failed or was refused, nil if it completed.
	// A file that does not exist gives an error that matches
	// fs.ErrNotExist (errors.Is).
	Err error
}

// String describes the transfer in a line, for a log or a terminal.
func (t Transfer) String() string {
	switch {
	case t.Err != nil:
		return fmt.Sprintf("%s %q: %v", t.Client, t.File, t.Err)
	case t.SizeProbe:
		return fmt.Sprintf("%s %q: size query (%d bytes)", t.Client, t.File, t.Size)
	}
	return fmt.Sprintf("%s %q: %d bytes in %v (blksize %d, windowsize %d, %d retransmitted)",
		t.Client, t.File, t.Bytes, t.Duration.Round(time.Millisecond), t.BlockSize, t.WindowSize, t.Retransmits)
}

// errServerStopped is the error of a transfer cut by the end of Serve.
var errServerStopped = errors.New("server stopped")

// clientError is an ERROR packet from the client, which ends a transfer.
type clientError struct {
	code ErrorCode
	msg  string
}

func (e *clientError) Error() string {
	return fmt.Sprintf("client ended the transfer with error %d %q", e.code, e.msg)
}

// transfer answers one request on a socket of its own and returns its
// record.
func (s *Server) transfer(ctx context.Context, local *net.UDPAddr, peer netip.AddrPort, req Request) (t Transfer) {
	t = Transfer{Client: unmap(peer), File: req.Filename, Size: -1, BlockSize: defaultBlockSize, WindowSize: 1, Start: time.Now()}
	defer func() { t.Duration = time.Since(t.Start) }()
	conn, err := listenTransfer(local)
	if err != nil {
		t.Err = fmt.Errorf("opening a socket for the transfer on %s: %w", local.IP, err)
		return t
	}
	defer conn.Close()
	// Closing the socket interrupts a wait for the client.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	ss := &session{
		srv:     s,
		conn:    conn,
		peer:    peer,
		rec:     &t,
		timeout: orDefault(s.Timeout, defaultTimeout),
		retries: orDefault(s.Retries, defaultRetries),
		in:      make([]byte, 4+maxErrorMessage+1),
	}
	t.Err = ss.run(req)
	if t.Err != nil && ctx.Err() != nil {
		t.Err = errServerStopped
	}
	return t
}

// listenTransfer opens the socket of a transfer (its transfer ID) on a
// free port of the listening socket's address, in the same family: an
// IPv4 socket for an IPv4 address, including 0.0.0.0; a dual-stack one
// for an IPv6 address, so that a dual-stack listener's IPv4 clients
// (::ffff:192.0.2.7) can be answered.
func listenTransfer(local *net.UDPAddr) (*net.UDPConn, error) {
	network := "udp"
	if local.IP.To4() != nil {
		network = "udp4"
	}
	return net.ListenUDP(network, &net.UDPAddr{IP: local.IP, Zone: local.Zone})
}

// session is a transfer in progress.
type session struct {
	srv     *Server
	conn    *net.UDPConn
	peer    netip.AddrPort // the client's transfer ID, as the listening socket saw it
	rec     *Transfer
	timeout time.Duration
	retries int
	in      []byte // receive buffer: an ACK, or an ERROR with a message cut short
	out     []byte // send buffer, reused from block to block
}

// run answers the request: with an ERROR if it is refused, else with the
// file, after an OACK if options were negotiated.
func (t *session) run(req Request) error {
	if req.Op == OpWRQ {
		return t.refuse(CodeAccessViolation, "read-only server", errors.New("write request refused: this is a read-only server"))
	}
	if req.Mode != "octet" {
		return t.refuse(CodeIllegalOperation, "only octet mode is supported",
			fmt.Errorf("%s mode refused: only octet (binary) transfers are supported", req.Mode))
	}
	name, err := cleanName(req.Filename)
	if err != nil {
		return t.refuse(CodeAccessViolation, "access violation", err)
	}
	f, size, err := openFile(t.srv.Root, name)
	if errors.Is(err, fs.ErrNotExist) {
		return t.refuse(CodeFileNotFound, "file not found", fmt.Errorf("not in %s: %w", t.srv.Root.Name(), err))
	} else if err != nil {
		// The reason (a symbolic link out of the root, permissions) is
		// for the log, not for the client.
		return t.refuse(CodeAccessViolation, "access violation", fmt.Errorf("refused in %s: %w", t.srv.Root.Name(), err))
	}
	defer f.Close()
	t.rec.Size = size

	p := negotiate(req.Options, size, t.srv.limits())
	t.rec.BlockSize, t.rec.WindowSize, t.timeout = p.blockSize, p.windowSize, p.timeout
	if len(p.ignored) > 0 {
		t.srv.log().Debug("tftp: options ignored (unknown or out of range)", "client", t.rec.Client, "file", req.Filename, "options", p.ignored)
	}
	if p.oack != nil {
		oack := appendOACK(nil, p.oack)
		err := t.exchange(func() error { return t.send(oack) }, func(block uint16) bool { return block == 0 })
		var ce *clientError
		if errors.As(err, &ce) && p.tsize {
			t.rec.SizeProbe = true
			return nil
		}
		if err != nil {
			return fmt.Errorf("OACK: %w", err)
		}
	}
	return t.sendFile(f, size, p)
}

// sendFile sends the file in windows of blocks, each after the client
// acknowledged the last, until it acknowledged all. Blocks are counted
// from 1 in a uint64 and sent with the count's low 16 bits as the block
// number, which so rolls over from 65535 to 0 as iPXE and EDK2 expect.
// The file always ends with a block shorter than the block size, empty
// if the size is a multiple of it (RFC 1350).
func (t *session) sendFile(f *os.File, size int64, p params) error {
	bs := uint64(p.blockSize)
	blocks := uint64(size)/bs + 1
	t.out = make([]byte, 4+p.blockSize)
	var acked uint64
	for acked < blocks {
		first, last := acked+1, min(acked+uint64(p.windowSize), blocks)
		err := t.exchange(
			func() error {
				for i := first; i <= last; i++ {
					if err := t.sendBlock(f, size, bs, i); err != nil {
						return err
					}
				}
				return nil
			},
			func(block uint16) bool {
				// How far the ACK moves the window: 0 for a duplicate of
				// the last ACK, more than the window for an old one.
				// uint16 arithmetic gives the distance across a rollover.
				n := uint64(block - uint16(acked))
				if n == 0 || n > last-acked {
					return false
				}
				acked += n
				return true
			})
		t.rec.Bytes = min(int64(acked*bs), size)
		if err != nil {
			return fmt.Errorf("block %d: %w", uint16(acked+1), err)
		}
	}
	return nil
}

// sendBlock sends block i (counted from 1) of the file of size bytes.
func (t *session) sendBlock(f *os.File, size int64, bs, i uint64) error {
	off := int64((i - 1) * bs)
	n := min(int64(bs), size-off)
	got, err := f.ReadAt(t.out[4:4+n], off)
	if int64(got) < n {
		if err == nil || err == io.EOF {
			err = fmt.Errorf("%s shrank below the %d bytes it had when the transfer started", t.rec.File, size)
		}
		return t.refuse(CodeNotDefined, "read error", fmt.Errorf("reading %s: %w", t.rec.File, err))
	}
	return t.send(appendData(t.out[:0], uint16(i), t.out[4:4+n]))
}

// exchange sends with send and waits for an ACK that done accepts. It
// sends again after each timeout, up to Retries times in a row, and
// never in answer to another ACK: a duplicate or old ACK is ignored, for
// answering it would send every later block twice (the Sorcerer's
// Apprentice bug, RFC 1123 section 4.2.3.1). An ERROR from the client
// ends the exchange with a *clientError.
func (t *session) exchange(send func() error, done func(block uint16) bool) error {
	for try := 0; ; try++ {
		if try > 0 {
			t.rec.Retransmits++
		}
		if err := send(); err != nil {
			return err
		}
		deadline := time.Now().Add(t.timeout)
		for {
			r, err := t.await(deadline)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				return err
			}
			if r.op == OpERROR {
				return &clientError{code: r.code, msg: r.msg}
			}
			if done(r.block) {
				return nil
			}
		}
		if try == t.retries {
			t.send(appendError(nil, CodeNotDefined, "timed out"))
			return fmt.Errorf("no acknowledgement in %v, sent %d times (the client stopped, or a firewall drops UDP to the transfer's port %d)",
				t.timeout, try+1, t.conn.LocalAddr().(*net.UDPAddr).Port)
		}
	}
}

// await returns the next ACK or ERROR from the client that arrives
// before deadline. A packet from another address or port is answered
// with an "unknown transfer ID" ERROR (RFC 1350 section 4) unless it is
// an ERROR itself, and a malformed packet from the client is dropped:
// neither moves the deadline or disturbs the transfer.
func (t *session) await(deadline time.Time) (reply, error) {
	if err := t.conn.SetReadDeadline(deadline); err != nil {
		return reply{}, err
	}
	for {
		n, from, err := t.conn.ReadFromUDPAddrPort(t.in)
		if err != nil {
			return reply{}, err
		}
		r, perr := parseReply(t.in[:n])
		if unmap(from) != t.rec.Client {
			if perr != nil || r.op != OpERROR {
				t.conn.WriteToUDPAddrPort(appendError(nil, CodeUnknownTID, "unknown transfer ID"), from)
			}
			t.srv.log().Debug("tftp: packet from a stranger answered with unknown transfer ID", "client", t.rec.Client, "from", unmap(from))
			continue
		}
		if perr != nil {
			t.srv.log().Debug("tftp: malformed packet from the client dropped", "client", t.rec.Client, "err", perr)
			continue
		}
		return r, nil
	}
}

// send sends a packet to the client.
func (t *session) send(pkt []byte) error {
	if _, err := t.conn.WriteToUDPAddrPort(pkt, t.peer); err != nil {
		return fmt.Errorf("sending to %s: %w", t.rec.Client, err)
	}
	return nil
}

// refuse sends the client an ERROR and returns err, the reason for the
// record and the log; msg is what the client is told.
func (t *session) refuse(code ErrorCode, msg string, err error) error {
	t.send(appendError(nil, code, msg))
	return err
}

// report logs a transfer that ended and hands it to OnTransfer.
func (s *Server) report(t Transfer) {
	args := []any{"client", t.Client, "file", t.File, "size", t.Size, "bytes", t.Bytes,
		"blksize", t.BlockSize, "windowsize", t.WindowSize, "retransmits", t.Retransmits, "duration", t.Duration}
	switch {
	case t.Err == nil && t.SizeProbe:
		s.log().Debug("tftp: size query answered", args...)
	case t.Err == nil:
		s.log().Debug("tftp: file sent", args...)
	case errors.Is(t.Err, fs.ErrNotExist):
		s.failure(slog.LevelInfo, "tftp: file not found", append(args, "err", t.Err)...)
	default:
		s.failure(slog.LevelWarn, "tftp: transfer failed", append(args, "err", t.Err)...)
	}
	if s.OnTransfer != nil {
		s.OnTransfer(t)
	}
}
