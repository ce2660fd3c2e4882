package watchdog

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// End is what a Keeper does with the device when it stops.
type End int

const (
	// LeaveArmed closes the device without disarming it: the box resets
	// after the timeout unless another process opens and pings it (or the
	// box reboots first). For a trial boot that failed.
	LeaveArmed End = iota
	// Disarm stops the timer (the magic close). For a boot that is good.
	Disarm
)

// String names the end for logs: "leave armed" or "disarm".
func (e End) String() string {
	if e == Disarm {
		return "disarm"
	}
	return "leave armed"
}

// fallbackInterval is the ping interval for a driver that does not report
// its timeout: no watchdog runs shorter than a second.
const fallbackInterval = time.Second

// Interval is how often a Keeper pings a device whose timeout is t: a
// third of it, so two pings may be late before the box resets.
func Interval(t time.Duration) time.Duration {
	if t <= 0 {
		return fallbackInterval
	}
	return t / 3
}

// newTicker is replaced in tests.
var newTicker = func(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// Keeper pings a device from a goroutine until it is stopped.
type Keeper struct {
	dev  *Device
	stop chan End
	errc chan error    // why a Stop did not end the goroutine
	done chan struct{} // closed when the goroutine has ended

	stopMu sync.Mutex // one Stop at a time talks to the goroutine

	mu      sync.Mutex
	pings   int
	last    time.Time
	pingErr error
	endErr  error // how the device was closed
}

// Keep pings d now and then every Interval(d.Timeout()) from a goroutine,
// until Stop or the end of ctx. When ctx ends the keeper closes d leaving
// it armed (LeaveArmed): a process that is going away, or a box about to
// reboot, has no business disarming. The Keeper owns d from now on; set
// its timeout before, as the interval is taken from it once.
func Keep(ctx context.Context, d *Device) *Keeper {
	k := &Keeper{dev: d, stop: make(chan End), errc: make(chan error), done: make(chan struct{})}
	go k.run(ctx)
	return k
}

func (k *Keeper) run(ctx context.Context) {
	defer close(k.done)
	tick, stopTicker := newTicker(Interval(k.dev.Timeout()))
	defer stopTicker()
	k.ping()
	for {
		select {
		case <-tick:
			k.ping()
		case <-ctx.Done():
			k.finish(k.dev.Close())
			return
		case end := <-k.stop:
			if end == Disarm && k.dev.NoWayOut() {
				// Stopping the pings would reset the box: go on.
				k.errc <- fmt.Errorf("watchdog %s (%s): %w", k.dev.path, k.dev.identity, ErrNoWayOut)
				continue
			}
			var err error
			if end == Disarm {
				err = k.dev.Disarm()
			} else {
				err = k.dev.Close()
			}
			k.finish(err)
			return
		}
	}
}

func (k *Keeper) ping() {
	err := k.dev.Ping()
	k.mu.Lock()
	defer k.mu.Unlock()
	k.pingErr = err
	if err == nil {
		k.pings++
		k.last = time.Now()
	}
}

func (k *Keeper) finish(err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.endErr = err
}

// Stop ends the pinging and then leaves the watchdog armed or disarms it,
// as end says, and returns the error of that. A driver that cannot stop
// (nowayout) makes Stop(Disarm) return ErrNoWayOut and the keeper go on
// pinging until ctx ends. Once the keeper has ended, Stop only returns how
// it ended.
func (k *Keeper) Stop(end End) error {
	k.stopMu.Lock()
	defer k.stopMu.Unlock()
	select {
	case k.stop <- end:
		select {
		case err := <-k.errc: // it goes on pinging
			return err
		case <-k.done:
		}
	case <-k.done:
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.endErr
}

// Done is closed once the keeper has stopped pinging and closed the
// device (Stop, or the end of ctx).
func (k *Keeper) Done() <-chan struct{} { return k.done }

// Pings returns how many pings went through, when the last one did, and
// the error of the latest ping if it failed: for status and metrics.
func (k *Keeper) Pings() (n int, last time.Time, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.pings, k.last, k.pingErr
}
