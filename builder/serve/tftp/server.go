package tftp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// Server serves the files under Root over TFTP, read-only. The zero
// value of every field but Root is a usable default. A Server may serve
// several sockets at once (one Serve call each, e.g. one per interface);
// MaxTransfers then bounds them together. Do not change the fields once
// Serve is called.
type Server struct {
	// Root is the directory served. An os.Root rather than an fs.FS,
	// because only os.Root guarantees that no name and no symbolic link
	// reaches outside the directory (os.DirFS follows symbolic links out
	// of it), and because the transfers need the size (tsize) and random
	// access (retransmission) that an *os.File has. Open it with
	// os.OpenRoot.
	Root *os.Root

	// Log receives the server's structured logs: failures at Warn (and
	// files not found at Info, since firmware searching for its
	// configuration asks for many that do not exist), at most a burst
	// and then one a second; completed transfers, size queries and
	// ignored packets at Debug. Nil means slog.Default().
	Log *slog.Logger

	// Timeout is how long to wait for an acknowledgement before sending
	// again, unless the client negotiates its own (RFC 2349 timeout).
	// Zero means 1s.
	Timeout time.Duration

	// Retries is how many times in a row a packet is sent again before
	// the transfer is given up. Zero means 5; to send only once, use a
	// Timeout long enough instead.
	Retries int

	// MaxBlockSize caps the block size a client may negotiate (RFC 2348
	// allows up to 65464). Zero means 1468: the largest block that fits
	// a 1500-byte Ethernet frame, since a fragmented block is lost when
	// either fragment is.
	MaxBlockSize int

	// MaxWindowSize caps the RFC 7440 window, the number of blocks sent
	// before waiting for an acknowledgement. Zero means 16; 1 turns
	// windows off (lock-step as in RFC 1350).
	MaxWindowSize int

	// MaxTransfers caps the transfers in progress. A request beyond it
	// is answered "server busy" (clients retry). Zero means 64.
	MaxTransfers int

	// OnTransfer, if set, is called once for every request the server
	// accepted to consider (a well-formed RRQ or WRQ, while not busy),
	// when it ends, whether with the whole file, a size query, or a
	// refusal such as file not found: what each booting client asked
	// for. It is called from the transfer's goroutine, so concurrently,
	// and should return quickly.
	OnTransfer func(Transfer)

	once   sync.Once
	shared *shared
}

// shared is the state of a Server that its Serve calls share.
type shared struct {
	slots chan struct{} // one token per transfer in progress

	mu     sync.Mutex
	active map[string]bool // client address and request bytes of transfers in progress

	failures *logLimiter
}

// Defaults of the Server fields.
const (
	defaultTimeout       = time.Second
	defaultRetries       = 5
	defaultMaxBlockSize  = 1468 // 1500 - 20 (IPv4) - 8 (UDP) - 4 (TFTP header)
	defaultMaxWindowSize = 16
	defaultMaxTransfers  = 64

	failureBurst    = 20
	failureInterval = time.Second
)

// check returns an error naming the first field with an impossible value.
func (s *Server) check() error {
	switch {
	case s.Root == nil:
		return errors.New("tftp: Server.Root is nil (open the directory to serve with os.OpenRoot)")
	case s.Timeout < 0:
		return fmt.Errorf("tftp: Server.Timeout is %v (want a positive duration, or 0 for %v)", s.Timeout, defaultTimeout)
	case s.Retries < 0:
		return fmt.Errorf("tftp: Server.Retries is %d (want a positive number, or 0 for %d)", s.Retries, defaultRetries)
	case s.MaxBlockSize != 0 && (s.MaxBlockSize < minBlockSize || s.MaxBlockSize > maxBlockSize):
		return fmt.Errorf("tftp: Server.MaxBlockSize is %d (want %d to %d, or 0 for %d)", s.MaxBlockSize, minBlockSize, maxBlockSize, defaultMaxBlockSize)
	case s.MaxWindowSize < 0 || s.MaxWindowSize > maxWindowSize:
		return fmt.Errorf("tftp: Server.MaxWindowSize is %d (want 1 to %d, or 0 for %d)", s.MaxWindowSize, maxWindowSize, defaultMaxWindowSize)
	case s.MaxTransfers < 0:
		return fmt.Errorf("tftp: Server.MaxTransfers is %d (want a positive number, or 0 for %d)", s.MaxTransfers, defaultMaxTransfers)
	}
	return nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.Default()
	}
	return s.Log
}

func (s *Server) limits() limits {
	return limits{
		maxBlockSize:  orDefault(s.MaxBlockSize, defaultMaxBlockSize),
		maxWindowSize: orDefault(s.MaxWindowSize, defaultMaxWindowSize),
		timeout:       orDefault(s.Timeout, defaultTimeout),
	}
}

// Serve answers the requests that arrive on conn, a UDP socket
// (net.ListenPacket("udp4", "192.0.2.1:69")), until ctx is cancelled or
// reading conn fails. It returns nil when ctx is cancelled, after the
// transfers in progress have stopped; it closes conn when it returns.
// Each transfer gets its own socket on conn's IP address.
func (s *Server) Serve(ctx context.Context, conn net.PacketConn) error {
	defer conn.Close()
	if err := s.check(); err != nil {
		return err
	}
	local, ok := conn.LocalAddr().(*net.UDPAddr)
	if !ok {
		return fmt.Errorf("tftp: Serve needs a UDP socket, not %s %s (use net.ListenPacket(\"udp4\", ...))", conn.LocalAddr().Network(), conn.LocalAddr())
	}
	s.once.Do(func() {
		s.shared = &shared{
			slots:    make(chan struct{}, orDefault(s.MaxTransfers, defaultMaxTransfers)),
			active:   map[string]bool{},
			failures: newLogLimiter(failureBurst, failureInterval),
		}
	})
	log := s.log().With("listen", local.String())

	ctx, cancel := context.WithCancel(ctx)
	var transfers sync.WaitGroup
	defer func() {
		cancel()
		transfers.Wait()
		if n := s.shared.failures.flush(); n > 0 {
			log.Warn("tftp: failure log lines dropped by the rate limit", "dropped", n)
		}
	}()
	// Closing conn is what interrupts the read below.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	// One byte more than a request may have, to tell a long one from one
	// that fits.
	buf := make([]byte, maxRequestSize+1)
	for {
		n, addr, err := conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("tftp: reading requests on %s: %w", local, err)
		}
		from, ok := addrPort(addr)
		if !ok {
			continue
		}
		s.request(ctx, conn, local, from, buf[:n], &transfers)
	}
}

// request handles one packet that arrived on the listening socket:
// refuses it there if it is malformed or the server is busy, else starts
// its transfer.
func (s *Server) request(ctx context.Context, conn net.PacketConn, local *net.UDPAddr, from netip.AddrPort, pkt []byte, transfers *sync.WaitGroup) {
	client := unmap(from)
	req, err := ParseRequest(pkt)
	if err != nil {
		// An ERROR is never answered with an ERROR (RFC 1350), or two
		// confused peers would bounce them forever.
		if len(pkt) < 2 || Opcode(binary.BigEndian.Uint16(pkt)) != OpERROR {
			conn.WriteTo(appendError(nil, CodeIllegalOperation, err.Error()), net.UDPAddrFromAddrPort(from))
		}
		s.failure(slog.LevelWarn, "tftp: malformed request refused", "client", client, "err", err)
		return
	}
	// A client that hears nothing soon enough sends its request again;
	// the transfer already under way answers it by retransmitting, so an
	// identical request from the same port starts nothing.
	key := from.String() + "\x00" + string(pkt)
	sh := s.shared
	sh.mu.Lock()
	dup := sh.active[key]
	sh.active[key] = true
	sh.mu.Unlock()
	if dup {
		s.log().Debug("tftp: repeated request ignored, its transfer is under way", "client", client, "file", req.Filename)
		return
	}
	select {
	case sh.slots <- struct{}{}:
	default:
		sh.mu.Lock()
		delete(sh.active, key)
		sh.mu.Unlock()
		conn.WriteTo(appendError(nil, CodeNotDefined, "server busy, try again later"), net.UDPAddrFromAddrPort(from))
		s.failure(slog.LevelWarn, "tftp: request refused, too many transfers in progress (raise Server.MaxTransfers if they are legitimate)",
			"client", client, "file", req.Filename, "max", cap(sh.slots))
		return
	}
	transfers.Add(1)
	go func() {
		defer transfers.Done()
		t := s.transfer(ctx, local, from, req)
		sh.mu.Lock()
		delete(sh.active, key)
		sh.mu.Unlock()
		<-sh.slots
		s.report(t)
	}()
}

// failure logs a failure through the rate limit.
func (s *Server) failure(level slog.Level, msg string, args ...any) {
	ok, dropped := s.shared.failures.allow(time.Now())
	if !ok {
		return
	}
	if dropped > 0 {
		args = append(args, "dropped_before", dropped)
	}
	s.log().Log(context.Background(), level, msg, args...)
}

// addrPort is the address of a UDP packet's sender.
func addrPort(a net.Addr) (netip.AddrPort, bool) {
	u, ok := a.(*net.UDPAddr)
	if !ok {
		return netip.AddrPort{}, false
	}
	return u.AddrPort(), true
}

// unmap turns an IPv4 client seen through a dual-stack socket
// (::ffff:192.0.2.7) into the address a person would write.
func unmap(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}
