package proxydhcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Server is a proxy DHCP server on one network interface.
type Server struct {
	// Interface is the network the boot clients are on: the proxy
	// binds to it, so that its broadcast offers leave there.
	Interface string
	// Address is the boot server's address the clients are told
	// (siaddr, option 54); zero: the interface's first IPv4 address.
	Address net.IP
	// Boot chooses each client's file.
	Boot BootFunc
	// Log gets a line per boot client answered or refused.
	Log *slog.Logger
	// Answered, if set, is called for every boot client answered
	// (err nil) or refused.
	Answered func(c Client, file string, err error)

	conns   []net.PacketConn // on DHCPPort, PXEPort
	server  net.IP
	mu      sync.Mutex
	refused map[string]time.Time
}

// refuseEvery is how often one client's refusal is logged: a client
// retries every few seconds for minutes.
const refuseEvery = 30 * time.Second

// Listen binds the proxy's ports on the interface (Serve calls it if
// nobody did): DHCP's port 67, which the site's DHCP server uses too when
// it runs on this same machine (run that one elsewhere, or set its
// options instead: cairn serve --dhcp-options), and PXE's 4011.
func (s *Server) Listen(ctx context.Context) error {
	server, err := s.address()
	if err != nil {
		return err
	}
	for _, port := range []int{DHCPPort, PXEPort} {
		c, err := listenOn(ctx, s.Interface, port)
		if err != nil {
			for _, c := range s.conns {
				c.Close()
			}
			s.conns = nil
			return err
		}
		s.conns = append(s.conns, c)
	}
	s.server = server
	return nil
}

// ServerAddress is the boot server's address handed out, once Listen
// has run.
func (s *Server) ServerAddress() net.IP { return s.server }

// Serve answers boot clients until ctx ends.
func (s *Server) Serve(ctx context.Context) error {
	if s.Log == nil {
		s.Log = slog.Default()
	}
	if s.conns == nil {
		if err := s.Listen(ctx); err != nil {
			return err
		}
	}
	s.Log.Info("proxy DHCP", "interface", s.Interface, "server", s.server.String(), "ports", fmt.Sprint(DHCPPort, ",", PXEPort))
	errs := make(chan error, len(s.conns))
	for i, c := range s.conns {
		go func() { errs <- s.serve(c, []int{DHCPPort, PXEPort}[i], s.server) }()
	}
	<-ctx.Done()
	for _, c := range s.conns {
		c.Close()
	}
	var err error
	for range s.conns {
		err = errors.Join(err, <-errs)
	}
	return err
}

// address is the server address to hand out.
func (s *Server) address() (net.IP, error) {
	if s.Address != nil {
		if s.Address.To4() == nil {
			return nil, fmt.Errorf("proxy DHCP: address %s is not IPv4 (PXE boots over IPv4)", s.Address)
		}
		return s.Address.To4(), nil
	}
	ifi, err := net.InterfaceByName(s.Interface)
	if err != nil {
		return nil, fmt.Errorf("proxy DHCP: interface %q: %w (name the interface the boot clients are on: ip -br link)", s.Interface, err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, fmt.Errorf("proxy DHCP: interface %s: %w", s.Interface, err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			return n.IP.To4(), nil
		}
	}
	return nil, fmt.Errorf("proxy DHCP: interface %s has no IPv4 address (give it one, or the boot clients cannot reach this server)", s.Interface)
}

// listenOn binds UDP port on the interface iface, for broadcasts.
func listenOn(ctx context.Context, iface string, port int) (net.PacketConn, error) {
	lc := net.ListenConfig{Control: func(network, address string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1); serr != nil {
				return
			}
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
				return
			}
			serr = unix.BindToDevice(int(fd), iface)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := lc.ListenPacket(ctx, "udp4", fmt.Sprintf("0.0.0.0:%d", port))
	if err != nil {
		return nil, fmt.Errorf("proxy DHCP: listen on %s port %d: %w (it needs root, and the port free: is a DHCP server running on this machine?)", iface, port, err)
	}
	return c, nil
}

// serve answers the packets on c, heard on port, until c closes.
func (s *Server) serve(c net.PacketConn, port int, server net.IP) error {
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		resp, client, file, err := Handle(buf[:n], port, server, s.Boot)
		if errors.Is(err, ErrNotBootClient) {
			continue
		}
		if err == nil && resp == nil {
			continue // a message for the site's server
		}
		if err == nil {
			to := replyTo(resp.GatewayIPAddr, from, port)
			if _, err = c.WriteTo(resp.ToBytes(), to); err != nil {
				err = fmt.Errorf("send to %s: %w", to, err)
			}
		}
		s.report(client, file, port, err)
	}
}

// replyTo is where an answer goes: back to a relay, to the client that
// asked on PXEPort (it has its address by then), else broadcast on the
// client port, since the client has no address yet.
func replyTo(gw net.IP, from net.Addr, port int) net.Addr {
	if gw != nil && !gw.IsUnspecified() {
		return &net.UDPAddr{IP: gw, Port: DHCPPort}
	}
	if port == PXEPort {
		return from
	}
	return &net.UDPAddr{IP: net.IPv4bcast, Port: clientPort}
}

// report logs one boot client's answer, a refusal at most every
// refuseEvery per client and reason.
func (s *Server) report(c Client, file string, port int, err error) {
	if s.Answered != nil {
		s.Answered(c, file, err)
	}
	if err == nil {
		s.Log.Info("boot client", "mac", c.MAC.String(), "arch", c.Arch, "firmware", c.Firmware.String(), "port", port, "file", file)
		return
	}
	if s.firstRefusal(c.MAC.String() + " " + err.Error()) {
		s.Log.Warn("boot client refused", "mac", c.MAC.String(), "arch", c.Arch, "firmware", c.Firmware.String(), "err", err)
	}
}

// firstRefusal says whether the refusal key is new or last logged more
// than refuseEvery ago, and notes it.
func (s *Server) firstRefusal(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if last, seen := s.refused[key]; seen && time.Since(last) < refuseEvery {
		return false
	}
	if s.refused == nil || len(s.refused) > 4096 { // a flood of made-up MACs: start again
		s.refused = map[string]time.Time{}
	}
	s.refused[key] = time.Now()
	return true
}
