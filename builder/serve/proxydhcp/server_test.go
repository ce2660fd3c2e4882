package proxydhcp

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/agent/netnstest"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// TestServer runs the proxy on a veth link in its own namespace, and a
// boot client on the other end: the client's broadcast DISCOVER gets a
// broadcast OFFER with its file, its REQUEST on port 4011 an ACK; an
// ordinary client and one of an architecture the bundle lacks get
// nothing, and the refusal is reported.
func TestServer(t *testing.T) {
	netnstest.NeedRoot(t)
	srvNS, cliNS := netnstest.Pair(t, "pxe0", "10.78.0.1/24", "cli0", "10.78.0.50/24")
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var refused []error
	srv := &Server{Interface: "pxe0", Boot: bootFiles, Answered: func(c Client, file string, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			refused = append(refused, err)
		}
	}}
	netnstest.In(t, srvNS, func() { // sockets belong to the namespace they are made in
		if err := srv.Listen(ctx); err != nil {
			t.Fatal(err)
		}
	})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})

	netnstest.In(t, cliNS, func() {
		c, err := listenOn(context.Background(), "cli0", clientPort)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ask := func(req *dhcpv4.DHCPv4, to *net.UDPAddr, wait time.Duration) *dhcpv4.DHCPv4 {
			t.Helper()
			deadline := time.Now().Add(wait)
			for time.Now().Before(deadline) { // the server may still be binding
				if _, err := c.WriteTo(req.ToBytes(), to); err != nil {
					t.Fatal(err)
				}
				c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
				buf := make([]byte, 1500)
				n, _, err := c.ReadFrom(buf)
				if err != nil {
					continue
				}
				resp, err := dhcpv4.FromBytes(buf[:n])
				if err != nil || resp.OpCode != dhcpv4.OpcodeBootReply || resp.TransactionID != req.TransactionID {
					continue // our own broadcast, heard back
				}
				return resp
			}
			return nil
		}
		bcast := &net.UDPAddr{IP: net.IPv4bcast, Port: DHCPPort}
		offer := ask(request(t, dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00007:UNDI:003000", archp(iana.EFI_X86_64), ""), bcast, 3*time.Second)
		if offer == nil || offer.MessageType() != dhcpv4.MessageTypeOffer || offer.BootFileName != "amd64/cairn.efi" || !offer.ServerIPAddr.Equal(server) {
			t.Fatalf("DISCOVER: got %v; want an OFFER of amd64/cairn.efi from %s", offer, server)
		}
		ack := ask(request(t, dhcpv4.MessageTypeRequest, "PXEClient:Arch:00007:UNDI:003000", archp(iana.EFI_X86_64), ""), &net.UDPAddr{IP: server, Port: PXEPort}, 3*time.Second)
		if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck || ack.BootFileName != "amd64/cairn.efi" {
			t.Fatalf("REQUEST on %d: got %v; want an ACK of amd64/cairn.efi", PXEPort, ack)
		}
		if got := ask(request(t, dhcpv4.MessageTypeDiscover, "", nil, ""), bcast, time.Second); got != nil {
			t.Errorf("an ordinary client got %s", got.Summary())
		}
		if got := ask(request(t, dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00011:UNDI:003000", archp(iana.EFI_ARM64), ""), bcast, time.Second); got != nil {
			t.Errorf("an arm64 client got %s from an amd64 bundle", got.Summary())
		}
	})
	mu.Lock()
	defer mu.Unlock()
	if len(refused) == 0 {
		t.Error("the arm64 client's refusal was not reported")
	}
}
