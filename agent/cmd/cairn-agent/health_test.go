package main

import (
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/agent/clock"
	"github.com/cairn-edge/cairn/agent/health"
	"github.com/cairn-edge/cairn/agent/services"
)

func TestClockHealth(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name       string
		st         clock.Status
		want       health.State
		wantReason string
	}{
		{"synced", clock.Status{Synced: true, Server: "10.0.2.3:123", LastSync: at}, health.OK, "confirmed by NTP server 10.0.2.3:123 at 2026-03-01T12:00:00Z"},
		{"synced after the floor", clock.Status{Synced: true, FloorSet: true, Server: "a:123", LastSync: at}, health.OK, "confirmed by NTP"},
		{"no answer yet, RTC", clock.Status{}, health.Starting, "waiting for an NTP answer; the time is the real-time clock's"},
		{"no answer yet, floor", clock.Status{FloorSet: true, Floor: at}, health.Starting, "the clock was set forward to the last known time 2026-03-01T12:00:00Z and may be behind"},
		{"NTP failing, floor", clock.Status{FloorSet: true, Floor: at, LastError: "lookup pool.ntp.org: no such host"}, health.Degraded, "not confirmed by NTP (lookup pool.ntp.org: no such host); the clock was set forward"},
		{"NTP failing, RTC", clock.Status{LastError: "i/o timeout"}, health.Degraded, "not confirmed by NTP (i/o timeout); the time is the real-time clock's (check the network and clock.ntp)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, reason := clockHealth(tt.st)
			if got != tt.want || !strings.Contains(reason, tt.wantReason) {
				t.Errorf("clockHealth = %s %q, want %s with %q", got, reason, tt.want, tt.wantReason)
			}
		})
	}
}

func TestServicesHealth(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	running := func(name string) services.Status {
		return services.Status{Name: name, State: services.StateRunning, Ready: true}
	}
	for _, tt := range []struct {
		name       string
		list       []services.Status
		want       health.State
		wantReason string
	}{
		{"all ready", []services.Status{running("dns"), running("web")}, health.OK, "2 services running"},
		{"one starting", []services.Status{running("dns"), {Name: "web", State: services.StateStarting}, {Name: "app", State: services.StateWaiting}}, health.Starting, "1 of 3 services ready; waiting for web (starting), app (waiting)"},
		{"running, not ready yet", []services.Status{{Name: "web", State: services.StateStarting}}, health.Starting, "0 of 1 services ready"},
		{"one restarting", []services.Status{running("dns"), {Name: "web", State: services.StateBackoff, LastExit: &services.Exit{Code: 1, At: at}}}, health.Failed, "web restarting after exit status 1 at 2026-03-01T12:00:00Z"},
		{"down beats waiting", []services.Status{{Name: "app", State: services.StateWaiting}, {Name: "web", State: services.StateExited, LastExit: &services.Exit{Code: 0, At: at}}}, health.Failed, "web exited after exit status 0"},
		{"start failed", []services.Status{{Name: "web", State: services.StateBackoff, LastError: "image web not found"}}, health.Failed, "web restarting: image web not found"},
		{"stopped", []services.Status{{Name: "web", State: services.StateStopped}}, health.Failed, "web stopped"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, reason := servicesHealth(tt.list)
			if got != tt.want || !strings.Contains(reason, tt.wantReason) {
				t.Errorf("servicesHealth = %s %q, want %s with %q", got, reason, tt.want, tt.wantReason)
			}
		})
	}
}
