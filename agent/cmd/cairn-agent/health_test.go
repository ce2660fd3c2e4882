package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/cairn-edge/cairn/agent/network"
	"log/slog"
	"slices"
	"strings"
	"sync"
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
		waited     time.Duration
		want       health.State
		wantReason string
	}{
		{"synced", clock.Status{Synced: true, Server: "10.0.2.3:123", LastSync: at}, time.Hour, health.OK, "confirmed by NTP server 10.0.2.3:123 at 2026-03-01T12:00:00Z"},
		{"synced after the floor", clock.Status{Synced: true, FloorSet: true, Server: "a:123", LastSync: at}, time.Second, health.OK, "confirmed by NTP"},
		{"no answer yet, RTC", clock.Status{}, time.Hour, health.Starting, "waiting for an NTP answer; the time is the real-time clock's"},
		{"no answer yet, floor", clock.Status{FloorSet: true, Floor: at}, time.Second, health.Starting, "the clock was set forward to the last known time 2026-03-01T12:00:00Z and may be behind"},
		{"failing at boot, before DHCP", clock.Status{LastError: "lookup pool.ntp.org: connection refused"}, 10 * time.Second, health.Starting, "waiting for an NTP answer (lookup pool.ntp.org: connection refused); the time is the real-time clock's"},
		{"NTP failing, floor", clock.Status{FloorSet: true, Floor: at, LastError: "lookup pool.ntp.org: no such host"}, clockGrace, health.Degraded, "not confirmed by NTP (lookup pool.ntp.org: no such host); the clock was set forward"},
		{"NTP failing, RTC", clock.Status{LastError: "i/o timeout"}, time.Hour, health.Degraded, "not confirmed by NTP (i/o timeout); the time is the real-time clock's (check the network and clock.ntp)"},
		{"step refused", clock.Status{FloorSet: true, Floor: at, LastError: "step refused: …", Refused: &clock.Refusal{At: at.Add(time.Minute), Reason: "NTP servers disagree: a says 2036-…"}}, time.Second, health.Degraded, "NTP servers disagree: a says 2036-…; the clock was set forward to the last known time 2026-03-01T12:00:00Z"},
		{"set by the administrator after a refusal", clock.Status{Source: clock.SourceAdmin, AdminSet: at.Add(time.Hour), Refused: &clock.Refusal{At: at.Add(time.Minute), Reason: "NTP servers disagree"}}, time.Second, health.Starting, "waiting for an NTP answer; the clock was set by an administrator to 2026-03-01T13:00:00Z"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, reason := clockHealth(tt.st, tt.waited)
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

// fakeManager is a services manager whose Start returns err once release
// is closed, and whose list is what the test sets.
type fakeManager struct {
	release chan struct{}
	err     error
	mu      sync.Mutex
	list    []services.Status
}

func (f *fakeManager) Start(ctx context.Context) error {
	<-f.release
	return f.err
}

func (f *fakeManager) List() []services.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.list)
}

func (f *fakeManager) set(list ...services.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.list = list
}

// sayTo makes the console a slice for the test.
func sayTo(t *testing.T) func() []string {
	var mu sync.Mutex
	var lines []string
	old := say
	say = func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, fmt.Sprintf(format, args...))
	}
	t.Cleanup(func() { say = old })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(lines)
	}
}

// TestWatchServices: `services ready count=N` comes from the model, once
// Start returned and every service is ready; a Start that fails is a
// failed part and a warning.
func TestWatchServices(t *testing.T) {
	defer func(d time.Duration) { servicesEvery = d }(servicesEvery)
	servicesEvery = 5 * time.Millisecond
	waiting := services.Status{Name: "web", State: services.StateWaiting}
	ready := func(name string) services.Status {
		return services.Status{Name: name, State: services.StateRunning, Ready: true}
	}

	t.Run("ready", func(t *testing.T) {
		console := sayTo(t)
		m := health.New(health.WithLogger(slog.New(slog.DiscardHandler)))
		p := m.Part("services")
		f := &fakeManager{release: make(chan struct{})}
		f.set(ready("dns"), waiting)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan struct{})
		go func() { watchServices(ctx, m, p, f); close(done) }()
		waitCtx, stop := context.WithTimeout(ctx, 5*time.Second)
		defer stop()
		if s, err := m.Wait(waitCtx, func(s health.Snapshot) bool { return strings.Contains(s.Reason, "1 of 2 services ready") }); err != nil {
			t.Fatalf("while starting: %v (%+v)", err, s)
		}
		f.set(ready("dns"), services.Status{Name: "web", State: services.StateBackoff, LastError: "no image"})
		if _, err := m.Wait(waitCtx, func(s health.Snapshot) bool { return s.State == health.Failed }); err != nil {
			t.Fatalf("a service down: %v", err)
		}
		f.set(ready("dns"), ready("web"))
		close(f.release)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("watchServices did not return once all were ready")
		}
		if got := console(); !slices.Equal(got, []string{"services ready count=2"}) {
			t.Errorf("console %q", got)
		}
		if st := p.Status(); st.State != health.OK || st.Reason != "2 services running" {
			t.Errorf("part %s %q", st.State, st.Reason)
		}
	})

	t.Run("start fails", func(t *testing.T) {
		console := sayTo(t)
		m := health.New(health.WithLogger(slog.New(slog.DiscardHandler)))
		p := m.Part("services")
		f := &fakeManager{release: make(chan struct{}), err: errors.New("containerd at /run/containerd/containerd.sock: connection refused")}
		f.set(waiting)
		close(f.release)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		watchServices(ctx, m, p, f)
		time.Sleep(4 * servicesEvery) // the poll must not undo the verdict
		if st := p.Status(); st.State != health.Failed || !strings.Contains(st.Reason, "connection refused") {
			t.Errorf("part %s %q, want failed with Start's error", st.State, st.Reason)
		}
		if got := console(); !slices.Equal(got, []string{"warning: services: containerd at /run/containerd/containerd.sock: connection refused"}) {
			t.Errorf("console %q", got)
		}
	})
}

func TestNetworkHealth(t *testing.T) {
	bound := network.LinkStatus{Name: "eth0", Up: true, Carrier: true, Addresses: []string{"fe80::1/64", "10.0.2.15/24"}}
	selecting := network.LinkStatus{Name: "eth0", Up: true, Carrier: true, Addresses: []string{"fe80::1/64"}, DHCP: &network.LeaseStatus{State: "discovering"}}
	unplugged := network.LinkStatus{Name: "eth1", Up: true}
	for _, tt := range []struct {
		name   string
		links  []network.LinkStatus
		waited time.Duration
		want   health.State
		reason string
	}{
		{"bound", []network.LinkStatus{unplugged, bound}, time.Minute, health.OK, "eth0 10.0.2.15/24"},
		{"link-local only, early", []network.LinkStatus{selecting}, time.Second, health.Starting, "eth0: DHCP discovering"},
		{"no answer for long", []network.LinkStatus{selecting, unplugged}, 5 * time.Minute, health.Degraded, "eth1: no carrier"},
		{"no links", nil, 5 * time.Minute, health.Degraded, "no link matches"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, reason := networkHealth(network.Status{Links: tt.links}, tt.waited)
			if got != tt.want || !strings.Contains(reason, tt.reason) {
				t.Errorf("networkHealth = %s, %q; want %s with %q", got, reason, tt.want, tt.reason)
			}
		})
	}
}
