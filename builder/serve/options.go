package serve

import (
	"fmt"
	"strings"
)

// Options are the settings that make a site's own DHCP server send its
// iPXE clients to this server's boot script at base (http://addr:port),
// for sites that would rather not run a proxy DHCP server: for dnsmasq,
// ISC dhcpd and Windows Server's DHCP. The script chains to the client's
// architecture by itself, so one setting serves them all.
func Options(b *Bundle, base string) string {
	url := base + rootScript
	var s strings.Builder
	fmt.Fprintf(&s, "# Machines whose network boot runs iPXE (QEMU's, many servers' NICs)\n")
	fmt.Fprintf(&s, "# get Cairn's boot script; the bundle holds %s.\n\n", strings.Join(b.Archs(), ", "))
	fmt.Fprintf(&s, "# dnsmasq (dnsmasq.conf, or --conf-file):\n")
	fmt.Fprintf(&s, "dhcp-userclass=set:ipxe,iPXE\n")
	fmt.Fprintf(&s, "dhcp-boot=tag:ipxe,%s\n\n", url)
	fmt.Fprintf(&s, "# ISC dhcpd (dhcpd.conf, in the subnet's block):\n")
	fmt.Fprintf(&s, "if exists user-class and option user-class = \"iPXE\" {\n")
	fmt.Fprintf(&s, "  filename \"%s\";\n", url)
	fmt.Fprintf(&s, "}\n\n")
	fmt.Fprintf(&s, "# Windows Server DHCP (PowerShell):\n")
	fmt.Fprintf(&s, "Add-DhcpServerv4Class -Name \"iPXE\" -Type User -Data \"iPXE\"\n")
	fmt.Fprintf(&s, "Add-DhcpServerv4Policy -Name \"Cairn iPXE\" -Condition OR -UserClass EQ,\"iPXE\"\n")
	fmt.Fprintf(&s, "Set-DhcpServerv4OptionValue -PolicyName \"Cairn iPXE\" -OptionId 67 -Value \"%s\"\n", url)
	return s.String()
}
