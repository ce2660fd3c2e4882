package proxydhcp

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

var mac = net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}

// request is a boot client's DHCP message.
func request(t testing.TB, typ dhcpv4.MessageType, class string, arch *iana.Arch, userClass string) *dhcpv4.DHCPv4 {
	t.Helper()
	mods := []dhcpv4.Modifier{dhcpv4.WithMessageType(typ), dhcpv4.WithHwAddr(mac),
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, append([]byte{0}, bytes.Repeat([]byte{0xab}, 16)...))}
	if class != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptClassIdentifier(class)))
	}
	if arch != nil {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptClientArch(*arch)))
	}
	if userClass != "" {
		mods = append(mods, dhcpv4.WithUserClass(userClass, true))
	}
	req, err := dhcpv4.New(mods...)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func archp(a iana.Arch) *iana.Arch { return &a }

func TestIdentify(t *testing.T) {
	for _, tt := range []struct {
		name      string
		class     string
		arch      *iana.Arch
		userClass string
		want      string // Client.String, or the error's start
	}{
		{"BIOS PXE ROM", "PXEClient:Arch:00000:UNDI:002001", archp(iana.INTEL_X86PC), "", "52:54:00:12:34:56 amd64/bios"},
		{"BIOS without option 93", "PXEClient", nil, "", "52:54:00:12:34:56 amd64/bios"},
		{"OVMF's PXE", "PXEClient:Arch:00007:UNDI:003000", archp(iana.EFI_X86_64), "", "52:54:00:12:34:56 amd64/uefi"},
		{"x86-64 UEFI as RFC 4578 says", "PXEClient:Arch:00009:UNDI:003000", archp(iana.EFI_BC), "", "52:54:00:12:34:56 amd64/uefi"},
		{"AAVMF's PXE", "PXEClient:Arch:00011:UNDI:003000", archp(iana.EFI_ARM64), "", "52:54:00:12:34:56 arm64/uefi"},
		{"x86-64 HTTP boot", "HTTPClient:Arch:00016:UNDI:003000", archp(iana.EFI_X86_64_HTTP), "", "52:54:00:12:34:56 amd64/uefi-http"},
		{"arm64 HTTP boot", "HTTPClient:Arch:00019:UNDI:003000", archp(iana.EFI_ARM64_HTTP), "", "52:54:00:12:34:56 arm64/uefi-http"},
		{"iPXE in a BIOS", "PXEClient:Arch:00000:UNDI:002001", archp(iana.INTEL_X86PC), "iPXE", "52:54:00:12:34:56 amd64/ipxe"},
		{"iPXE in UEFI", "PXEClient:Arch:00007:UNDI:003010", archp(iana.EFI_X86_64), "iPXE", "52:54:00:12:34:56 amd64/ipxe"},
		{"an ordinary DHCP client", "", nil, "", ErrNotBootClient.Error()},
		{"a phone", "android-dhcp-14", nil, "", ErrNotBootClient.Error()},
		{"32-bit UEFI", "PXEClient:Arch:00006:UNDI:003000", archp(iana.EFI_IA32), "", "52:54:00:12:34:56: client architecture EFI IA32 (type 6) is not one Cairn boots"},
		{"RISC-V", "PXEClient:Arch:00027:UNDI:003000", archp(iana.EFI_RISCV64), "", "52:54:00:12:34:56: client architecture"},
		{"HTTP boot without an architecture", "HTTPClient", nil, "", "52:54:00:12:34:56: HTTP boot client without a client architecture"},
		{"PXE class with an HTTP architecture", "PXEClient", archp(iana.EFI_X86_64_HTTP), "", "52:54:00:12:34:56: vendor class \"PXEClient\" does not match"},
		{"HTTP class with a PXE architecture", "HTTPClient", archp(iana.EFI_X86_64), "", "52:54:00:12:34:56: vendor class \"HTTPClient\" does not match"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Identify(request(t, dhcpv4.MessageTypeDiscover, tt.class, tt.arch, tt.userClass))
			got := c.String()
			if err != nil {
				got = err.Error()
			}
			if !strings.HasPrefix(got, tt.want) {
				t.Errorf("Identify = %q, want %q", got, tt.want)
			}
		})
	}
}

var server = net.IPv4(10, 78, 0, 1)

// bootFiles is a bundle holding amd64 only.
func bootFiles(c Client) (string, error) {
	if c.Arch != "amd64" {
		return "", fmt.Errorf("no %s in the bundle", c.Arch)
	}
	switch c.Firmware {
	case BIOS:
		return "amd64/undionly.kpxe", nil
	case UEFI:
		return "amd64/cairn.efi", nil
	}
	return "http://10.78.0.1:8080/amd64/boot.ipxe", nil
}

func TestHandle(t *testing.T) {
	for _, tt := range []struct {
		name     string
		req      *dhcpv4.DHCPv4
		port     int
		typ      dhcpv4.MessageType // of the reply; 0: none
		file     string
		class    string
		vendor43 bool
		err      string
	}{
		{"UEFI PXE DISCOVER", request(t, dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00007", archp(iana.EFI_X86_64), ""), DHCPPort, dhcpv4.MessageTypeOffer, "amd64/cairn.efi", "PXEClient", true, ""},
		{"UEFI PXE REQUEST on 4011", request(t, dhcpv4.MessageTypeRequest, "PXEClient:Arch:00007", archp(iana.EFI_X86_64), ""), PXEPort, dhcpv4.MessageTypeAck, "amd64/cairn.efi", "PXEClient", true, ""},
		{"BIOS DISCOVER", request(t, dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00000", archp(iana.INTEL_X86PC), ""), DHCPPort, dhcpv4.MessageTypeOffer, "amd64/undionly.kpxe", "PXEClient", true, ""},
		{"iPXE DISCOVER", request(t, dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00000", archp(iana.INTEL_X86PC), "iPXE"), DHCPPort, dhcpv4.MessageTypeOffer, "http://10.78.0.1:8080/amd64/boot.ipxe", "PXEClient", true, ""},
		{"HTTP boot DISCOVER", request(t, dhcpv4.MessageTypeDiscover, "HTTPClient:Arch:00016", archp(iana.EFI_X86_64_HTTP), ""), DHCPPort, dhcpv4.MessageTypeOffer, "http://10.78.0.1:8080/amd64/boot.ipxe", "HTTPClient", false, ""},
		{"REQUEST on 67 is the site server's", request(t, dhcpv4.MessageTypeRequest, "PXEClient:Arch:00007", archp(iana.EFI_X86_64), ""), DHCPPort, 0, "", "", false, ""},
		{"DISCOVER on 4011", request(t, dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00007", archp(iana.EFI_X86_64), ""), PXEPort, 0, "", "", false, ""},
		{"RELEASE", request(t, dhcpv4.MessageTypeRelease, "PXEClient:Arch:00007", archp(iana.EFI_X86_64), ""), PXEPort, 0, "", "", false, ""},
		{"an architecture the bundle lacks", request(t, dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00011", archp(iana.EFI_ARM64), ""), DHCPPort, 0, "", "", false, "no arm64 in the bundle"},
		{"not a boot client", request(t, dhcpv4.MessageTypeDiscover, "", nil, ""), DHCPPort, 0, "", "", false, ErrNotBootClient.Error()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, c, file, err := Handle(tt.req.ToBytes(), tt.port, server, bootFiles)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Handle: err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.typ == 0 {
				if resp != nil {
					t.Fatalf("Handle answered %s; want no answer", resp.MessageType())
				}
				return
			}
			if resp.MessageType() != tt.typ || file != tt.file || resp.BootFileName != tt.file {
				t.Fatalf("Handle = %s file %q (%q); want %s file %q", resp.MessageType(), resp.BootFileName, file, tt.typ, tt.file)
			}
			if resp.OpCode != dhcpv4.OpcodeBootReply || resp.TransactionID != tt.req.TransactionID || !bytes.Equal(resp.ClientHWAddr, mac) {
				t.Errorf("reply op %s xid %s chaddr %s; want BootReply %s %s", resp.OpCode, resp.TransactionID, resp.ClientHWAddr, tt.req.TransactionID, mac)
			}
			if !resp.YourIPAddr.IsUnspecified() {
				t.Errorf("yiaddr %s: a proxy hands out no address", resp.YourIPAddr)
			}
			if !resp.ServerIPAddr.Equal(server) || !resp.ServerIdentifier().Equal(server) {
				t.Errorf("siaddr %s, server identifier %s; want %s", resp.ServerIPAddr, resp.ServerIdentifier(), server)
			}
			if resp.ClassIdentifier() != tt.class {
				t.Errorf("vendor class %q, want %q", resp.ClassIdentifier(), tt.class)
			}
			if got := resp.GetOneOption(dhcpv4.OptionVendorSpecificInformation); (got != nil) != tt.vendor43 || (got != nil && !bytes.Equal(got, []byte{6, 1, 8, 0xff})) {
				t.Errorf("option 43 %x; want discovery control 8: %v", got, tt.vendor43)
			}
			if got := resp.GetOneOption(dhcpv4.OptionClientMachineIdentifier); !bytes.Equal(got, tt.req.GetOneOption(dhcpv4.OptionClientMachineIdentifier)) {
				t.Errorf("option 97 %x not copied", got)
			}
			if c.MAC.String() != mac.String() {
				t.Errorf("client %s", c)
			}
		})
	}
}

func TestReplyRefusesLongFile(t *testing.T) {
	req := request(t, dhcpv4.MessageTypeDiscover, "PXEClient", nil, "")
	c, _ := Identify(req)
	if _, err := Reply(req, DHCPPort, c, server, "http://x/"+strings.Repeat("a", 200)); err == nil || !strings.Contains(err.Error(), "at most 127") {
		t.Fatalf("Reply with a 209-byte file: %v", err)
	}
	if _, err := Reply(req, DHCPPort, c, net.ParseIP("fe80::1"), "f"); err == nil {
		t.Fatal("Reply with an IPv6 server: no error")
	}
}

// FuzzHandle feeds the proxy what the network may send it: it must never
// panic, and what it answers is a reply to a boot client, with no address.
func FuzzHandle(f *testing.F) {
	for _, req := range []*dhcpv4.DHCPv4{
		request(f, dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00007", archp(iana.EFI_X86_64), ""),
		request(f, dhcpv4.MessageTypeRequest, "PXEClient:Arch:00000", archp(iana.INTEL_X86PC), "iPXE"),
		request(f, dhcpv4.MessageTypeDiscover, "HTTPClient:Arch:00019", archp(iana.EFI_ARM64_HTTP), ""),
		request(f, dhcpv4.MessageTypeDiscover, "", nil, ""),
	} {
		f.Add(req.ToBytes(), DHCPPort)
		f.Add(req.ToBytes(), PXEPort)
	}
	f.Add([]byte{1, 1, 6, 0}, DHCPPort)
	f.Fuzz(func(t *testing.T, packet []byte, port int) {
		resp, c, _, err := Handle(packet, port, server, bootFiles)
		if resp == nil {
			return
		}
		if err != nil {
			t.Fatalf("a reply and an error: %v", err)
		}
		if resp.OpCode != dhcpv4.OpcodeBootReply || !resp.YourIPAddr.IsUnspecified() || c.Arch == "" {
			t.Fatalf("reply %s to %s", resp.Summary(), c)
		}
		if _, err := dhcpv4.FromBytes(resp.ToBytes()); err != nil {
			t.Fatalf("the reply does not parse: %v", err)
		}
	})
}

func TestHandleNoise(t *testing.T) {
	for _, p := range [][]byte{nil, {1}, bytes.Repeat([]byte{0xff}, 300)} {
		if _, _, _, err := Handle(p, DHCPPort, server, bootFiles); !errors.Is(err, ErrNotBootClient) {
			t.Errorf("Handle(%x…) = %v, want ErrNotBootClient", p[:min(len(p), 4)], err)
		}
	}
}
