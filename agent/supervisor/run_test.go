package supervisor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeRun is one scripted run of a fakeRunner.
type fakeRun struct {
	ran  time.Duration // fake time it runs before it exits
	code int
	err  error // its start fails
}

// fakeRunner plays its script, one run per Run; after the script it runs
// until its context ends, saying so on running.
type fakeRunner struct {
	clock   *fakeClock
	script  []fakeRun
	starts  int
	running chan struct{}
}

func (f *fakeRunner) Run(ctx context.Context, started func(pid int)) (Exit, error) {
	i := f.starts
	f.starts++
	if i >= len(f.script) {
		started(100 + i)
		f.running <- struct{}{}
		<-ctx.Done()
		return Exit{Code: 143, Reason: "signal: terminated"}, nil
	}
	r := f.script[i]
	if r.err != nil {
		return Exit{}, r.err
	}
	started(100 + i)
	f.clock.advance(r.ran)
	return Exit{Code: r.code, Reason: fmt.Sprintf("exit %d", r.code)}, nil
}

// fakeClock is the Supervisor's time: now moves only when told, and
// after records each wait, either passing it at once (fire) or never.
type fakeClock struct {
	fire bool

	mu     sync.Mutex
	t      time.Time
	waited []time.Duration
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *fakeClock) after(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	c.waited = append(c.waited, d)
	c.mu.Unlock()
	if !c.fire {
		return nil // never
	}
	c.advance(d)
	ch := make(chan time.Time, 1)
	ch <- c.now()
	return ch
}

// harness runs a Supervisor over a fakeRunner and turns its hooks into
// events the test can wait for.
type harness struct {
	t      *testing.T
	s      *Supervisor
	clock  *fakeClock
	runner *fakeRunner
	events chan string // "started", "exited exit 3", "requested", "failed", "waiting 2s", "down"
	exits  []Exit      // every Exited hook's, in order
	cancel context.CancelFunc
	done   chan struct{}
}

func newHarness(t *testing.T, p Policy, fire bool, script ...fakeRun) *harness {
	t.Helper()
	clock := &fakeClock{fire: fire, t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	h := &harness{t: t, clock: clock, runner: &fakeRunner{clock: clock, script: script, running: make(chan struct{}, 100)},
		events: make(chan string, 100), done: make(chan struct{})}
	h.s = New(h.runner, p, Hooks{
		Started: func(int) { h.events <- "started" },
		Exited: func(e Exit, err error) {
			switch {
			case err != nil:
				h.events <- "failed"
			case e.Requested:
				h.exits = append(h.exits, e)
				h.events <- "requested"
			default:
				h.exits = append(h.exits, e)
				h.events <- "exited " + e.Reason
			}
		},
		Waiting: func(d time.Duration, down bool) {
			if down {
				h.events <- "down"
			} else {
				h.events <- fmt.Sprintf("waiting %s", d)
			}
		},
	})
	h.s.now, h.s.after = clock.now, clock.after
	var ctx context.Context
	ctx, h.cancel = context.WithCancel(context.Background())
	go func() {
		defer close(h.done)
		h.s.Run(ctx)
	}()
	t.Cleanup(h.stop)
	return h
}

// await returns the events up to and including the first that is want.
func (h *harness) await(want string) []string {
	h.t.Helper()
	var seen []string
	for {
		select {
		case ev := <-h.events:
			seen = append(seen, ev)
			if ev == want {
				return seen
			}
		case <-time.After(5 * time.Second):
			h.t.Fatalf("no %q in 5 s; saw %q", want, seen)
		}
	}
}

// awaitRunning waits until the runner is past its script.
func (h *harness) awaitRunning() {
	h.t.Helper()
	select {
	case <-h.runner.running:
	case <-time.After(5 * time.Second):
		h.t.Fatalf("the script did not end in 5 s")
	}
}

// stop ends Run and fails the test unless it returns promptly.
func (h *harness) stop() {
	h.t.Helper()
	h.cancel()
	select {
	case <-h.done:
	case <-time.After(5 * time.Second):
		h.t.Fatal("Run did not return within 5 s of its context's end")
	}
}

func TestRunPolicy(t *testing.T) {
	quick := func(code int) fakeRun { return fakeRun{ran: 10 * time.Millisecond, code: code} }
	backoff := Backoff{Min: time.Second, Max: 8 * time.Second}
	for _, tt := range []struct {
		name   string
		mode   Mode
		script []fakeRun
		down   bool            // the last run is kept down (else the runner goes on)
		waits  []time.Duration // the backoffs waited
	}{
		{"backoff doubles up to its max", Always, []fakeRun{quick(1), quick(1), quick(1), quick(1), quick(1)}, false,
			[]time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second}},
		{"a run longer than max resets it", Always, []fakeRun{quick(1), quick(1), quick(1), {ran: 9 * time.Second, code: 1}, quick(1)}, false,
			[]time.Duration{time.Second, 2 * time.Second, 4 * time.Second, time.Second, 2 * time.Second}},
		{"always restarts a clean exit", Always, []fakeRun{quick(0)}, false, []time.Duration{time.Second}},
		{"the zero mode is always", "", []fakeRun{quick(0)}, false, []time.Duration{time.Second}},
		{"on-failure restarts a failure", OnFailure, []fakeRun{quick(2)}, false, []time.Duration{time.Second}},
		{"on-failure keeps a clean exit down", OnFailure, []fakeRun{quick(1), quick(0)}, true, []time.Duration{time.Second}},
		{"never keeps a failure down", Never, []fakeRun{quick(1)}, true, nil},
		{"never retries a failed start", Never, []fakeRun{{err: errors.New("no such file")}, quick(0)}, true, []time.Duration{time.Second}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Policy{Restart: tt.mode, Backoff: backoff}, true, tt.script...)
			if tt.down {
				h.await("down")
			} else {
				h.awaitRunning()
			}
			h.stop()
			if got, want := h.clock.waited, tt.waits; !slices.Equal(got, want) {
				t.Errorf("waited %v, want %v", got, want)
			}
			wantStarts := len(tt.script)
			if !tt.down {
				wantStarts++ // the run past the script
			}
			if got := h.runner.starts; got != wantStarts {
				t.Errorf("%d starts, want %d", got, wantStarts)
			}
			if got, want := h.s.Status().Restarts, wantStarts-1; got != want {
				t.Errorf("Status().Restarts = %d, want %d", got, want)
			}
		})
	}
}

func TestStopDuringBackoff(t *testing.T) {
	h := newHarness(t, Policy{Backoff: Backoff{Min: time.Hour, Max: time.Hour}}, false, fakeRun{code: 1})
	h.await("waiting 1h0m0s")
	h.stop() // fails unless Run returns at once
	if h.runner.starts != 1 {
		t.Errorf("%d starts, want 1: stopped during the backoff", h.runner.starts)
	}
}

func TestRestartNow(t *testing.T) {
	for _, tt := range []struct {
		name   string
		policy Policy
		code   int    // the first run's exit
		await  string // the event after which RestartNow is called
	}{
		{"skips the backoff", Policy{Backoff: Backoff{Min: time.Hour, Max: time.Hour}}, 1, "waiting 1h0m0s"},
		{"starts one the policy keeps down", Policy{Restart: OnFailure}, 0, "down"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.policy, false, fakeRun{code: tt.code})
			h.await(tt.await)
			h.s.RestartNow()
			h.awaitRunning()
			h.stop()
			if got := h.s.Status().Restarts; got != 1 {
				t.Errorf("Status().Restarts = %d, want 1", got)
			}
		})
	}
	t.Run("stops a running one and starts it at once", func(t *testing.T) {
		h := newHarness(t, Policy{}, false)
		h.await("started")
		h.awaitRunning()
		h.s.RestartNow()
		got := h.await("started")
		if want := []string{"requested", "waiting 0s", "started"}; !slices.Equal(got, want) {
			t.Errorf("events %q, want %q", got, want)
		}
		h.stop()
		if len(h.clock.waited) != 0 {
			t.Errorf("waited %v after RestartNow, want no wait", h.clock.waited)
		}
		if len(h.exits) != 1 || !h.exits[0].Requested {
			t.Errorf("exits %+v, want one, requested", h.exits)
		}
	})
	t.Run("before the first start does nothing more", func(t *testing.T) {
		clock := &fakeClock{}
		r := &fakeRunner{clock: clock, script: []fakeRun{{code: 1}}, running: make(chan struct{}, 1)}
		waiting := make(chan struct{}, 1)
		s := New(r, Policy{Backoff: Backoff{Min: time.Hour, Max: time.Hour}}, Hooks{Waiting: func(time.Duration, bool) { waiting <- struct{}{} }})
		s.now, s.after = clock.now, clock.after
		s.RestartNow()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { s.Run(ctx); close(done) }()
		select {
		case <-waiting:
		case <-time.After(5 * time.Second):
			t.Fatal("no backoff after the first run's exit")
		}
		cancel()
		<-done
		if r.starts != 1 {
			t.Errorf("%d starts, want 1: the first start was the restart asked for", r.starts)
		}
	})
}

func TestLastExit(t *testing.T) {
	h := newHarness(t, Policy{Restart: Never}, false, fakeRun{ran: 3 * time.Second, code: 3})
	if st := h.s.Status(); st.LastExit != nil {
		t.Errorf("before any exit, LastExit = %+v, want nil", st.LastExit)
	}
	got := h.await("down")
	if want := []string{"started", "exited exit 3", "down"}; !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
	st := h.s.Status()
	if st.LastExit == nil {
		t.Fatal("LastExit = nil after an exit")
	}
	if got, want := *st.LastExit, (Exit{Code: 3, Reason: "exit 3", Ran: 3 * time.Second}); got != want {
		t.Errorf("LastExit = %+v, want %+v", got, want)
	}
}

// TestStartingBeforeCount: the Starting hook runs before a restart is
// counted, so a reader of Status that sees a new count also sees what the
// hook recorded (the services' "starting" state), never the exit before it.
func TestStartingBeforeCount(t *testing.T) {
	clock := &fakeClock{fire: true, t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	runner := &fakeRunner{clock: clock, script: []fakeRun{{code: 1}, {code: 1}}, running: make(chan struct{}, 1)}
	var seen []int
	var s *Supervisor
	s = New(runner, Policy{Restart: Always}, Hooks{Starting: func() { seen = append(seen, s.Status().Restarts) }})
	s.now, s.after = clock.now, clock.after
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	select {
	case <-runner.running:
	case <-time.After(5 * time.Second):
		t.Fatal("the script did not end in 5 s")
	}
	cancel()
	<-done
	if want := []int{0, 0, 1}; !slices.Equal(seen, want) {
		t.Errorf("restarts counted when Starting ran = %v, want %v (the hook before each count)", seen, want)
	}
}
