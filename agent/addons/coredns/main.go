// Command coredns is Cairn's cluster DNS: upstream CoreDNS with only the
// plugins a single-node cluster's Corefile uses, so the binary and its
// memory stay small. CoreDNS normally takes its plugin list from
// core/plugin/zplugin.go (all ~60 plugins, generated from plugin.cfg); this
// main links just the packages below and tells the DNS server the order
// they run in.
package main

import (
	"fmt"
	"os"

	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

// directives are the linked plugins in execution order, which is the order
// of upstream's plugin.cfg (a plugin sees what every plugin after it does
// to a query, so this order is not free to change). A Corefile naming any
// other plugin is rejected at start with "Unknown directive". prometheus
// (the metrics plugin) costs nothing: the cache plugin links it anyway,
// and the usual cluster Corefile has it.
var directives = []string{
	"reload",
	"ready",
	"health",
	"prometheus",
	"errors",
	"log",
	"loadbalance",
	"cache",
	"kubernetes",
	"loop",
	"forward",
}

func main() {
	if err := dnsserver.SetDirectives(directives); err != nil {
		fmt.Fprintf(os.Stderr, "coredns: plugin list: %v\n", err)
		os.Exit(1)
	}
	coremain.Run()
}
