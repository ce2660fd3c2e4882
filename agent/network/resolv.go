package network

import (
	"fmt"
	"slices"
	"strings"

	"github.com/cairn-edge/cairn/agent/atomicfile"
)

// Limits of the C resolvers (glibc's MAXNS and MAXDNSRCH; musl has the
// same name server limit); more lines would be ignored.
const (
	maxNameservers = 3
	maxSearch      = 6
)

// resolvConf renders resolv.conf: the configured servers first, then
// those of each lease in link order, without duplicates.
func resolvConf(static []string, leases []*lease) (text string, servers []string) {
	servers = append(servers, static...)
	var search []string
	for _, le := range leases {
		for _, ip := range le.dns {
			if s := ip.String(); !slices.Contains(servers, s) {
				servers = append(servers, s)
			}
		}
		for _, d := range le.search {
			if !slices.Contains(search, d) {
				search = append(search, d)
			}
		}
	}
	servers = servers[:min(len(servers), maxNameservers)]
	search = search[:min(len(search), maxSearch)]
	var b strings.Builder
	b.WriteString("# written by cairn-agent; changes are lost\n")
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	return b.String(), servers
}

// writeResolvLocked rewrites resolv.conf when its content changes.
func (m *Manager) writeResolvLocked() {
	var idx []int
	for i, l := range m.links {
		if l.lease != nil {
			idx = append(idx, i)
		}
	}
	slices.Sort(idx)
	var leases []*lease
	for _, i := range idx {
		leases = append(leases, m.links[i].lease)
	}
	text, servers := resolvConf(m.cfg.DNS, leases)
	if text == m.resolvText {
		return
	}
	if err := atomicfile.WriteFile(m.resolvPath, []byte(text), 0o644); err != nil {
		m.log.Warn("cannot write resolv.conf", "path", m.resolvPath, "err", err)
		return
	}
	m.resolvText, m.resolvDNS = text, servers
	m.log.Info("resolv.conf written", "path", m.resolvPath, "nameservers", servers)
}
