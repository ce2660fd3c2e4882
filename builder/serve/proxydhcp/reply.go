package proxydhcp

import (
	"fmt"
	"net"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Ports of a proxy DHCP server: it hears the clients' broadcast
// DISCOVERs on DHCP's port, and the PXE clients that ask it again for
// their boot file on PXE's (PXE 2.1 §2.2.5).
const (
	DHCPPort   = 67
	PXEPort    = 4011
	clientPort = 68
)

// PXE vendor options (option 43, PXE 2.1 §2.4): discovery control's bit 3
// tells the client to take the boot file of this offer rather than run a
// boot server discovery or show a menu.
const (
	pxeDiscoveryControl = 6
	useBootFile         = 0x08
	pxeEnd              = 0xff
)

// maxBootFile is what the BOOTP file field holds, its final NUL aside.
const maxBootFile = 127

// BootFunc chooses a client's boot file: a TFTP path, or an http:// URL
// for UEFI HTTP and iPXE clients. Its error (nothing for this client)
// means no answer.
type BootFunc func(Client) (string, error)

// Reply is the proxy's answer to req heard on port (DHCPPort or PXEPort)
// from a boot client: an OFFER to a DISCOVER on DHCPPort, an ACK to a
// REQUEST on PXEPort, carrying no address (the site's server gives that)
// but server as the boot server and file as the boot file. Any other
// message gets no reply (nil, nil): REQUESTs on DHCPPort are for the
// site's server.
func Reply(req *dhcpv4.DHCPv4, port int, c Client, server net.IP, file string) (*dhcpv4.DHCPv4, error) {
	var typ dhcpv4.MessageType
	switch {
	case port == DHCPPort && req.MessageType() == dhcpv4.MessageTypeDiscover:
		typ = dhcpv4.MessageTypeOffer
	case port == PXEPort && (req.MessageType() == dhcpv4.MessageTypeRequest || req.MessageType() == dhcpv4.MessageTypeInform):
		typ = dhcpv4.MessageTypeAck
	default:
		return nil, nil
	}
	if len(file) > maxBootFile {
		return nil, fmt.Errorf("boot file %q for %s is %d bytes; DHCP carries at most %d (serve from a shorter path or URL)", file, c, len(file), maxBootFile)
	}
	if server.To4() == nil {
		return nil, fmt.Errorf("boot server %s is not an IPv4 address", server)
	}
	class := pxeClass
	if c.Firmware == UEFIHTTP {
		class = httpClass // EDK2's HTTP boot takes only an offer saying so
	}
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(typ),
		dhcpv4.WithServerIP(server.To4()),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(server.To4())),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(class)),
		dhcpv4.WithOptionCopied(req, dhcpv4.OptionClientMachineIdentifier), // the UUID, which some ROMs insist on
	}
	if c.Firmware != UEFIHTTP {
		mods = append(mods, dhcpv4.WithGeneric(dhcpv4.OptionVendorSpecificInformation, []byte{pxeDiscoveryControl, 1, useBootFile, pxeEnd}))
	}
	resp, err := dhcpv4.NewReplyFromRequest(req, mods...)
	if err != nil {
		return nil, err
	}
	resp.YourIPAddr = net.IPv4zero
	resp.BootFileName = file
	return resp, nil
}

// Handle is the proxy's whole decision on one packet heard on port: nil
// when it is not for us (not a boot client, a message the proxy does not
// answer, a client boot chooses nothing for). The Client is set whenever
// a boot client was recognised, so that a caller can say what it asked
// for; the error says why a boot client got no answer.
func Handle(packet []byte, port int, server net.IP, boot BootFunc) (*dhcpv4.DHCPv4, Client, string, error) {
	req, err := dhcpv4.FromBytes(packet)
	if err != nil {
		return nil, Client{}, "", ErrNotBootClient // not DHCP at all: the network's noise
	}
	if req.OpCode != dhcpv4.OpcodeBootRequest {
		return nil, Client{}, "", ErrNotBootClient
	}
	c, err := Identify(req)
	if err != nil {
		return nil, c, "", err
	}
	file, err := boot(c)
	if err != nil {
		return nil, c, "", err
	}
	resp, err := Reply(req, port, c, server, file)
	return resp, c, file, err
}
