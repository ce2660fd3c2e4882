package watchdog

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestInterval(t *testing.T) {
	for _, tt := range []struct{ timeout, want time.Duration }{
		{120 * time.Second, 40 * time.Second},
		{3 * time.Second, time.Second},
		{time.Second, time.Second / 3},
		{0, time.Second}, // the driver did not say
	} {
		if got := Interval(tt.timeout); got != tt.want {
			t.Errorf("Interval(%v) = %v, want %v", tt.timeout, got, tt.want)
		}
	}
}

// fakeTicks replaces the keeper's ticker with a channel the test ticks.
func fakeTicks(t *testing.T) (tick func(), interval *time.Duration) {
	t.Helper()
	saved := newTicker
	t.Cleanup(func() { newTicker = saved })
	c := make(chan time.Time)
	interval = new(time.Duration)
	newTicker = func(d time.Duration) (<-chan time.Time, func()) {
		*interval = d
		return c, func() {}
	}
	return func() { c <- time.Now() }, interval
}

// waitPings waits for the keeper to have pinged n times.
func waitPings(t *testing.T, k *Keeper, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, _, err := k.Pings()
		if err != nil {
			t.Fatal(err)
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the keeper pinged %d times, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestKeeperDisarm(t *testing.T) {
	tick, interval := fakeTicks(t)
	drv := esb()
	path := drv.install(t)
	d := open(t, path)
	if _, err := d.SetTimeout(120 * time.Second); err != nil {
		t.Fatal(err)
	}
	k := Keep(context.Background(), d)
	waitPings(t, k, 1) // at once, not only after the first interval
	tick()
	tick()
	waitPings(t, k, 3)
	if *interval != 40*time.Second {
		t.Errorf("the keeper pings every %v, want a third of the 120s timeout", *interval)
	}
	if n, last, _ := k.Pings(); drv.keepalives != n || time.Since(last) > time.Minute {
		t.Errorf("Pings() = %d at %v; the driver saw %d", n, last, drv.keepalives)
	}
	if err := k.Stop(Disarm); err != nil {
		t.Fatal(err)
	}
	if got := written(t, path); got != "V" {
		t.Errorf("Stop(Disarm) wrote %q, want the magic %q", got, "V")
	}
	select {
	case <-k.Done():
	default:
		t.Error("Done is not closed after Stop")
	}
	if err := k.Stop(LeaveArmed); err != nil {
		t.Errorf("a second Stop = %v, want how the first ended (nil)", err)
	}
}

func TestKeeperLeaveArmed(t *testing.T) {
	fakeTicks(t)
	path := esb().install(t)
	k := Keep(context.Background(), open(t, path))
	waitPings(t, k, 1)
	if err := k.Stop(LeaveArmed); err != nil {
		t.Fatal(err)
	}
	if got := written(t, path); strings.Contains(got, "V") {
		t.Errorf("Stop(LeaveArmed) wrote %q: the magic 'V' disarms", got)
	}
}

// The end of the context stops the pings and leaves the watchdog armed.
func TestKeeperContextLeavesArmed(t *testing.T) {
	fakeTicks(t)
	path := esb().install(t)
	ctx, cancel := context.WithCancel(context.Background())
	k := Keep(ctx, open(t, path))
	waitPings(t, k, 1)
	cancel()
	select {
	case <-k.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the keeper did not end with its context")
	}
	if got := written(t, path); strings.Contains(got, "V") {
		t.Errorf("the end of the context wrote %q: the magic 'V' disarms", got)
	}
	if err := k.Stop(Disarm); err != nil {
		t.Errorf("Stop after the context ended = %v, want how it ended (nil)", err)
	}
	if got := written(t, path); strings.Contains(got, "V") {
		t.Errorf("Stop(Disarm) after the end wrote %q: the device is closed", got)
	}
}

// A driver that cannot stop keeps being pinged: stopping the pings would
// reset the box.
func TestKeeperNoWayOut(t *testing.T) {
	tick, _ := fakeTicks(t)
	drv := esb()
	path := drv.install(t)
	drv.set(t, "nowayout", "1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	k := Keep(ctx, open(t, path))
	waitPings(t, k, 1)
	if err := k.Stop(Disarm); !errors.Is(err, ErrNoWayOut) {
		t.Fatalf("Stop(Disarm) with nowayout = %v, want ErrNoWayOut", err)
	}
	tick()
	waitPings(t, k, 2)
	select {
	case <-k.Done():
		t.Fatal("the keeper stopped although the watchdog cannot be disarmed")
	default:
	}
	if got := written(t, path); got != "" {
		t.Errorf("wrote %q to a nowayout watchdog, want nothing", got)
	}
}

func TestEndString(t *testing.T) {
	if LeaveArmed.String() != "leave armed" || Disarm.String() != "disarm" {
		t.Errorf("End strings: %q, %q", LeaveArmed, Disarm)
	}
}
