package main

import (
	"context"
	"fmt"
	"github.com/cairn-edge/cairn/agent/network"
	"net/netip"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cairn-edge/cairn/agent/clock"
	"github.com/cairn-edge/cairn/agent/health"
	"github.com/cairn-edge/cairn/agent/services"
)

// How often the parts that send no news are read into the health model:
// services often (a gate waits on them), the clock rarely (it changes at
// most every few seconds while it retries).
var (
	servicesEvery = time.Second
	clockEvery    = 5 * time.Second
)

// clockGrace is how long after the agent starts an unanswered NTP query
// is still only "starting": at boot the first queries fail until DHCP
// has given the node an address and a resolver.
const clockGrace = 2 * time.Minute

// watchClock reports the clock as the "clock" part.
func watchClock(ctx context.Context, p *health.Part, clk *clock.Syncer) {
	began := time.Now()
	health.Poll(ctx, p, clockEvery, func() (health.State, string) { return clockHealth(clk.Status(), time.Since(began)) })
}

// clockHealth is the clock part's verdict, waited after the agent
// started: confirmed by NTP, or only by the real-time clock, the floor
// (saved or build time, which may be behind) or an administrator; a node
// that cannot reach NTP is degraded, not failed (it runs, but
// certificates and logs may carry a wrong time). So is one that refused
// an NTP step since the administrator last set its clock: at once, as
// waiting will not help.
func clockHealth(st clock.Status, waited time.Duration) (health.State, string) {
	if st.Synced {
		return health.OK, fmt.Sprintf("confirmed by NTP server %s at %s", st.Server, st.LastSync.UTC().Format(time.RFC3339))
	}
	source := "the time is the real-time clock's"
	switch {
	case st.Source == clock.SourceAdmin:
		source = "the clock was set by an administrator to " + st.AdminSet.UTC().Format(time.RFC3339)
	case st.FloorSet:
		source = "the clock was set forward to the last known time " + st.Floor.UTC().Format(time.RFC3339) + " and may be behind"
	}
	switch {
	case st.Refused != nil && st.Refused.At.After(st.AdminSet):
		return health.Degraded, st.Refused.Reason + "; " + source
	case st.LastError == "":
		return health.Starting, "waiting for an NTP answer; " + source
	case waited < clockGrace:
		return health.Starting, "waiting for an NTP answer (" + st.LastError + "); " + source
	}
	return health.Degraded, "not confirmed by NTP (" + st.LastError + "); " + source + " (check the network and clock.ntp)"
}

// serviceManager is what watchServices needs of *services.Manager.
type serviceManager interface {
	Start(ctx context.Context) error
	List() []services.Status
}

// watchServices reports the system services as the "services" part,
// starts them, and says `services ready count=N` on the console the first
// time the part is OK.
func watchServices(ctx context.Context, m *health.Model, p *health.Part, svcs serviceManager) {
	// startErr is why Start failed (containerd out of reach): the list
	// would only say that every service waits.
	var startErr atomic.Pointer[string]
	go health.Poll(ctx, p, servicesEvery, func() (health.State, string) {
		if why := startErr.Load(); why != nil {
			return health.Failed, *why
		}
		return servicesHealth(svcs.List())
	})
	if err := svcs.Start(ctx); err != nil {
		if ctx.Err() == nil {
			why := err.Error()
			startErr.Store(&why)
			p.Set(health.Failed, why)
			say("warning: services: %v", err)
		}
		return
	}
	p.Set(servicesHealth(svcs.List())) // now, not at the next poll
	if _, err := m.Wait(ctx, health.PartsOK(p.Name())); err != nil {
		return // ctx ended
	}
	say("services ready count=%d", len(svcs.List()))
	// Starting services (importing images, unpacking layers) is the
	// agent's busiest moment; what it used goes back to the system now,
	// not over minutes.
	debug.FreeOSMemory()
}

// servicesHealth is the services part's verdict on the manager's list:
// failed while any is down (exited, restarting, stopped), starting while
// any is not ready yet, OK when all are.
func servicesHealth(list []services.Status) (health.State, string) {
	var down, waiting []string
	ready := 0
	for _, s := range list {
		switch {
		case s.Ready:
			ready++
		case s.State == services.StateWaiting || s.State == services.StateStarting:
			waiting = append(waiting, fmt.Sprintf("%s (%s)", s.Name, s.State))
		default:
			down = append(down, s.Name+" "+downReason(s))
		}
	}
	switch {
	case len(down) > 0:
		return health.Failed, strings.Join(down, "; ")
	case len(waiting) > 0:
		return health.Starting, fmt.Sprintf("%d of %d services ready; waiting for %s", ready, len(list), strings.Join(waiting, ", "))
	}
	return health.OK, fmt.Sprintf("%d services running", ready)
}

// downReason says why a service that is not running is down.
func downReason(s services.Status) string {
	var why string
	switch s.State {
	case services.StateBackoff:
		why = "restarting"
	default:
		why = string(s.State)
	}
	switch {
	case s.LastError != "":
		why += ": " + s.LastError
	case s.LastExit != nil:
		why += fmt.Sprintf(" after exit status %d at %s", s.LastExit.Code, s.LastExit.At.UTC().Format(time.RFC3339))
	}
	return why
}

// networkEvery is how often the network's state is read into the model.
var networkEvery = 2 * time.Second

// networkGrace is how long after the agent starts a node without an
// address is still only "starting" (links come up, DHCP answers).
const networkGrace = 2 * time.Minute

// watchNetwork reports the network as the "network" part: ok once a link
// has an address the node can be reached at. An upgrade's gate waits for
// it, so a release that loses the network (a NIC driver gone, a broken
// DHCP client) rolls back instead of leaving a box nobody can reach.
func watchNetwork(ctx context.Context, p *health.Part, nm *network.Manager) {
	began := time.Now()
	health.Poll(ctx, p, networkEvery, func() (health.State, string) { return networkHealth(nm.Status(), time.Since(began)) })
}

// networkHealth is the network part's verdict on the manager's status,
// waited after the agent started: ok with a reachable address (not
// loopback, not link-local), starting while none came within the grace,
// degraded after it (the node runs, but is out of reach).
func networkHealth(st network.Status, waited time.Duration) (health.State, string) {
	var waiting []string
	for _, l := range st.Links {
		for _, a := range l.Addresses {
			if p, err := netip.ParsePrefix(a); err == nil && !p.Addr().IsLoopback() && !p.Addr().IsLinkLocalUnicast() {
				return health.OK, fmt.Sprintf("%s %s", l.Name, a)
			}
		}
		why := "no carrier"
		switch {
		case !l.Up:
			why = "down"
		case l.Carrier && l.DHCP != nil:
			why = "DHCP " + l.DHCP.State
		case l.Carrier:
			why = "no address"
		}
		waiting = append(waiting, l.Name+": "+why)
	}
	reason := "no address on any link"
	if len(waiting) > 0 {
		reason += " (" + strings.Join(waiting, ", ") + ")"
	} else {
		reason += " (no link matches the network settings)"
	}
	if waited < networkGrace {
		return health.Starting, "waiting: " + reason
	}
	return health.Degraded, reason + " (check the cable, the DHCP server or network.interfaces)"
}
