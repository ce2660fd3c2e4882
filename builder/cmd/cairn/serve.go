package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/cairn-edge/cairn/builder/serve"
)

const serveUsage = `usage: cairn serve [flags] BUNDLE...

Network-boots machines from PXE bundles (cairn build --format pxe writes
one per architecture, NAME.pxe): an HTTP server for the files and the
iPXE boot scripts, and with --interface a proxy DHCP server on that
network, which tells the machines that network boot what to boot and
leaves handing out addresses to the site's own DHCP server. Machines
boot through iPXE (QEMU's and many servers' network cards carry it).

  cairn serve --interface eth0 out/edge-generic-x86_64.pxe out/edge-generic-arm64.pxe
  cairn serve --address 192.168.1.10 --dhcp-options out/edge-generic-x86_64.pxe

--dhcp-options prints the settings for the site's DHCP server (dnsmasq,
ISC dhcpd, Windows) instead, for sites that would rather not run a proxy;
then run cairn serve without --interface.

Flags:
`

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	fs.Usage = func() { fmt.Fprint(stderr, serveUsage); fs.PrintDefaults() }
	httpAddr := fs.String("http", ":8080", "the HTTP server's listen address")
	iface := fs.String("interface", "", "the network the machines boot on: runs the proxy DHCP server there (needs root)")
	address := fs.String("address", "", "this server's IPv4 address as the machines reach it (default: the interface's first)")
	options := fs.Bool("dhcp-options", false, "print the site DHCP server's settings instead of serving")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("no bundle: pass the .pxe directories cairn build --format pxe wrote")
	}
	var addr net.IP
	if *address != "" {
		if addr = net.ParseIP(*address).To4(); addr == nil {
			return fmt.Errorf("--address %q is not an IPv4 address (PXE boots over IPv4)", *address)
		}
	}
	b, err := serve.Open(fs.Args()...)
	if err != nil {
		return err
	}
	if *options {
		if addr == nil {
			return errors.New("--dhcp-options needs --address, the address the machines reach this server at")
		}
		_, port, err := net.SplitHostPort(*httpAddr)
		if err != nil {
			return fmt.Errorf("--http %q: %w", *httpAddr, err)
		}
		fmt.Fprint(stdout, serve.Options(b, "http://"+net.JoinHostPort(addr.String(), port)))
		return nil
	}
	return serve.Serve(ctx, b, serve.Config{HTTP: *httpAddr, Interface: *iface, Address: addr, Log: slog.Default()})
}
