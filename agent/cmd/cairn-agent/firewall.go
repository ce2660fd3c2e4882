package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/cairn-edge/cairn/agent/config"
	"github.com/cairn-edge/cairn/agent/firewall"
	"github.com/cairn-edge/cairn/agent/health"
)

// applyFirewall loads the host firewall when the configuration turns it
// on (config.Firewall says when), before the network comes up and the
// node API listens, so no address is ever served unfiltered. A policy that
// does not load leaves the node open but reachable (the node API still
// wants mutual TLS), says so on the console and fails the health part
// "firewall", which fails a trial boot's gate: the old slot comes back.
func applyFirewall(ctx context.Context, conf config.Config, apiPort int, hm *health.Model, log *slog.Logger) {
	if !conf.FirewallOn() {
		log.Info("firewall off")
		return
	}
	part := hm.Part("firewall")
	p := firewall.PolicyFor(conf, apiPort)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := firewall.Apply(ctx, p); err != nil {
		why := fmt.Sprintf("not applied, the node admits everything: %v", err)
		say("warning: firewall %s", why)
		part.Set(health.Failed, why)
		return
	}
	say("firewall on: %s", p.Summary())
	part.Set(health.OK, p.Summary())
}
