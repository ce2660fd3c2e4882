// Package proxydhcp answers the DHCP requests of network-booting machines
// with their boot file, and nothing else: a proxy DHCP server in the sense
// of the PXE specification (2.1, §2.2.5). The site's own DHCP server keeps
// handing out addresses; a PXE or UEFI HTTP boot client that hears both
// merges the address from that server with the boot file from this one,
// so `cairn serve` can run next to a DHCP server it does not control.
//
// Only requests whose vendor class (option 60) says PXEClient or
// HTTPClient are answered; every other DHCP client on the network is
// ignored. A Boot function chooses each client's file from what it is
// (Client: architecture, firmware), so that the same table also prints
// the options a site can set on its own server instead (Rules).
//
//	srv := &proxydhcp.Server{Interface: "br0", Boot: bundle.BootFile}
//	err := srv.Serve(ctx)
package proxydhcp

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// Firmware is the kind of network boot client.
type Firmware int

const (
	// BIOS is a legacy PXE option ROM: it fetches a boot file by TFTP.
	BIOS Firmware = iota
	// UEFI is UEFI PXE: an EFI application by TFTP.
	UEFI
	// UEFIHTTP is UEFI HTTP boot: an EFI application by its URL.
	UEFIHTTP
	// IPXE is iPXE (chainloaded, or the option ROM QEMU's NICs carry): it
	// runs an iPXE script from a URL.
	IPXE
)

func (f Firmware) String() string {
	switch f {
	case BIOS:
		return "bios"
	case UEFI:
		return "uefi"
	case UEFIHTTP:
		return "uefi-http"
	case IPXE:
		return "ipxe"
	}
	return fmt.Sprintf("firmware(%d)", int(f))
}

// Client is a booting machine as its request describes it.
type Client struct {
	// MAC is the client's hardware address (chaddr).
	MAC net.HardwareAddr
	// Arch is the GOARCH of the system it boots: amd64 or arm64.
	Arch string
	// Firmware is the kind of client.
	Firmware Firmware
	// ArchType is the raw client system architecture (option 93).
	ArchType iana.Arch
}

func (c Client) String() string {
	return fmt.Sprintf("%s %s/%s", c.MAC, c.Arch, c.Firmware)
}

// ErrNotBootClient is returned for a DHCP request that is not from a
// network boot client: an ordinary DHCP client, which the site's server
// answers. It is not worth a log line.
var ErrNotBootClient = errors.New("not a PXE or HTTP boot client")

// Vendor classes (option 60) of boot clients, as they begin.
const (
	pxeClass  = "PXEClient"
	httpClass = "HTTPClient"
)

// ipxeUserClass is iPXE's user class (option 77): a client that says it
// already runs iPXE gets a script rather than iPXE again, which would
// loop.
const ipxeUserClass = "iPXE"

// archs maps the client architecture types (RFC 4578 and IANA's
// registry, option 93) that Cairn boots to the GOARCH of the system and
// the kind of firmware. EDK2 sends 7 for x86-64 UEFI PXE where RFC 4578
// says 9: both are x86-64.
var archs = map[iana.Arch]struct {
	arch     string
	firmware Firmware
}{
	iana.INTEL_X86PC:     {"amd64", BIOS},
	iana.EFI_X86_64:      {"amd64", UEFI},
	iana.EFI_BC:          {"amd64", UEFI},
	iana.EFI_ARM64:       {"arm64", UEFI},
	iana.EFI_X86_64_HTTP: {"amd64", UEFIHTTP},
	iana.EFI_ARM64_HTTP:  {"arm64", UEFIHTTP},
}

// Identify reads what kind of boot client sent req. It returns
// ErrNotBootClient for an ordinary DHCP client, and an error naming the
// architecture for a boot client Cairn has nothing for (32-bit, RISC-V…).
func Identify(req *dhcpv4.DHCPv4) (Client, error) {
	class := req.ClassIdentifier()
	if !strings.HasPrefix(class, pxeClass) && !strings.HasPrefix(class, httpClass) {
		return Client{}, ErrNotBootClient
	}
	c := Client{MAC: req.ClientHWAddr}
	if at := req.ClientArch(); len(at) > 0 {
		c.ArchType = at[0]
	} else if strings.HasPrefix(class, httpClass) {
		return Client{}, fmt.Errorf("%s: HTTP boot client without a client architecture (option 93)", req.ClientHWAddr)
	} // else: a PXE client without option 93 is a BIOS one (PXE 2.1 made it required later)
	a, ok := archs[c.ArchType]
	if !ok {
		return Client{}, fmt.Errorf("%s: client architecture %s (type %d) is not one Cairn boots (amd64 BIOS or UEFI, arm64 UEFI)", req.ClientHWAddr, c.ArchType, uint16(c.ArchType))
	}
	c.Arch, c.Firmware = a.arch, a.firmware
	if (c.Firmware == UEFIHTTP) != strings.HasPrefix(class, httpClass) {
		return Client{}, fmt.Errorf("%s: vendor class %q does not match client architecture %s", req.ClientHWAddr, class, c.ArchType)
	}
	for _, uc := range req.UserClass() {
		if uc == ipxeUserClass {
			c.Firmware = IPXE
		}
	}
	return c, nil
}
