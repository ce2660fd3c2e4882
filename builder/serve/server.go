package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/cairn-edge/cairn/builder/serve/proxydhcp"
)

// Config is how cairn serve runs.
type Config struct {
	// HTTP is the address the HTTP server listens on (":8080").
	HTTP string
	// Interface is the network the machines boot on, where the proxy
	// DHCP server answers; "" runs none (the site's DHCP server has the
	// options: Options).
	Interface string
	// Address is this server's address on that network, as the machines
	// reach it; zero: the interface's first IPv4 address.
	Address net.IP
	// Log gets what is served.
	Log *slog.Logger
	// Served, if set, sees every HTTP request served.
	Served func(Transfer)
	// Booted, if set, sees every boot client the proxy answered or refused.
	Booted func(c proxydhcp.Client, file string, err error)
}

// Serve serves b until ctx ends. It fails at once when a port cannot be
// bound.
func Serve(ctx context.Context, b *Bundle, cfg Config) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	ln, err := net.Listen("tcp", cfg.HTTP)
	if err != nil {
		return fmt.Errorf("HTTP: %w (choose another port: --http)", err)
	}
	srv := &http.Server{Handler: b.Handler(log, cfg.Served), ReadHeaderTimeout: 10 * time.Second}
	errs := make(chan error, 2)
	go func() { errs <- srv.Serve(ln) }()
	running := 1
	if cfg.Interface != "" {
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		dhcp := &proxydhcp.Server{Interface: cfg.Interface, Address: cfg.Address, Log: log, Answered: cfg.Booted}
		dhcp.Boot = func(c proxydhcp.Client) (string, error) {
			return b.bootFile("http://"+net.JoinHostPort(dhcp.ServerAddress().String(), port), c)
		}
		if err := dhcp.Listen(ctx); err != nil {
			srv.Close()
			return err
		}
		go func() { errs <- dhcp.Serve(ctx) }()
		running++
	}
	log.Info("serving", "archs", fmt.Sprint(b.Archs()), "http", ln.Addr().String(), "proxy_dhcp", cfg.Interface != "")
	var first error
	select {
	case <-ctx.Done():
	case first = <-errs:
		running--
	}
	stop()
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(shut)
	for ; running > 0; running-- {
		if err := <-errs; first == nil && !errors.Is(err, http.ErrServerClosed) {
			first = err
		}
	}
	if errors.Is(first, http.ErrServerClosed) {
		first = nil
	}
	return first
}
