// Package serve is `cairn serve`: it network-boots machines from PXE
// bundles (cairn build --format pxe, builder/netboot) with an HTTP server
// for the files and the iPXE scripts, a TFTP server for firmware that
// only speaks TFTP, and a proxy DHCP server (builder/serve/proxydhcp)
// that tells the machines what to boot without handing out addresses,
// so it runs next to a site's own DHCP server. Options prints the same
// table as settings for that server instead.
package serve

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cairn-edge/cairn/builder/netboot"
	"github.com/cairn-edge/cairn/builder/serve/proxydhcp"
)

// Bundle is the architectures served, each from its bundle's folder.
type Bundle struct {
	archs map[string]arch
}

// arch is one architecture's folder and manifest.
type arch struct {
	dir string
	m   *netboot.Manifest
}

// Open reads the bundles dirs (each a cairn build --format pxe output,
// with a folder per architecture) and checks every file's digest: a
// machine is never handed a file that is not the one built.
func Open(dirs ...string) (*Bundle, error) {
	b := &Bundle{archs: map[string]arch{}}
	for _, dir := range dirs {
		found := false
		for _, a := range netboot.Archs {
			folder := filepath.Join(dir, a)
			if _, err := os.Stat(folder); os.IsNotExist(err) {
				continue
			}
			m, err := netboot.Read(folder)
			if err != nil {
				return nil, err
			}
			if prev, ok := b.archs[a]; ok {
				return nil, fmt.Errorf("%s and %s both hold %s (serve one bundle per architecture)", prev.dir, folder, a)
			}
			slog.Info("checking bundle", "arch", a, "image", m.Name, "version", m.Version, "dir", folder)
			if err := m.Verify(folder); err != nil {
				return nil, err
			}
			b.archs[a] = arch{dir: folder, m: m}
			found = true
		}
		if !found {
			return nil, fmt.Errorf("%s holds no bundle: no %s folder with a manifest (serve the .pxe directory cairn build --format pxe wrote)", dir, strings.Join(netboot.Archs, " or "))
		}
	}
	return b, nil
}

// Archs are the architectures the bundle holds, sorted.
func (b *Bundle) Archs() []string {
	var as []string
	for a := range b.archs {
		as = append(as, a)
	}
	slices.Sort(as)
	return as
}

// bootFile chooses a client's file on the server at base (http://addr:port).
func (b *Bundle) bootFile(base string, c proxydhcp.Client) (string, error) {
	if _, ok := b.archs[c.Arch]; !ok {
		return "", fmt.Errorf("the bundle holds no %s (it holds %s: build and serve an %s bundle too)", c.Arch, strings.Join(b.Archs(), ", "), c.Arch)
	}
	if c.Firmware != proxydhcp.IPXE {
		return "", fmt.Errorf("%s firmware loads an EFI or PXE program first, and the bundle holds none: boot the machine through iPXE (QEMU's NICs and many servers' carry it)", c.Firmware)
	}
	return base + scriptPath(c.Arch), nil
}
