package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ListenDevice listens on TCP port on the interface iface only: the socket
// is bound to the device (SO_BINDTODEVICE) rather than to an address, so it
// keeps serving when DHCP changes the link's address, and packets arriving
// on other links never reach it.
func ListenDevice(ctx context.Context, iface string, port int) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, iface)
		}); err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("binding to interface %s: %w", iface, serr)
		}
		return nil
	}}
	return lc.Listen(ctx, "tcp", net.JoinHostPort("", strconv.Itoa(port)))
}

// MetricsHandler serves GET /metrics alone, with no authentication: for a
// plain listener the spec enables (api.metrics), so a Prometheus without a
// client certificate can scrape the node. Everything else is 404.
func (s *Server) MetricsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path != "/metrics":
			writeError(w, http.StatusNotFound, "only /metrics is served here (the node API is on its TLS port)")
		case r.Method != http.MethodGet && r.Method != http.MethodHead:
			w.Header().Set("Allow", "GET")
			writeError(w, http.StatusMethodNotAllowed, "%s /metrics: use GET", r.Method)
		default:
			s.metricsHandler(w, r)
		}
	})
}

// ServeMetrics serves MetricsHandler in plain HTTP on ln until ctx ends.
func (s *Server) ServeMetrics(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.MetricsHandler(),
		ReadHeaderTimeout: s.handshakeTimeout,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    16 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
