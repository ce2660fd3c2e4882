// Package supervisor runs things and restarts them: one restart policy
// (a Mode and a Backoff) for every kind of thing Cairn keeps running.
//
// A Runner starts a thing once and waits for it to exit; a Supervisor
// runs a Runner again and again under a Policy and tells its Hooks what
// happens. Process is the Runner for host processes (containerd and
// cairn-agent under cairn-init, cairn-kube under cairn-agent); the
// services package has one for containerd tasks.
//
//	s := supervisor.New(&supervisor.Process{Path: "/usr/bin/containerd"},
//		supervisor.Policy{Restart: supervisor.Always, Backoff: supervisor.DefaultBackoff},
//		supervisor.Hooks{Exited: func(e supervisor.Exit, err error) { ... }})
//	go s.Run(ctx)   // until ctx ends
//	s.RestartNow()  // stop the running one and start it again at once
//
// Host is the shorthand for host processes, with their log messages.
//
// Only PID 1 reaps: its Reaper owns wait4(-1), and the processes it
// starts are registered with it (see Process.Reaper).
package supervisor

import (
	"context"
	"sync"
	"time"
)

// Hooks hear what a Supervisor does; any may be nil. They are called from
// the goroutine running Supervisor.Run, one at a time.
type Hooks struct {
	// Starting is called as a run begins, before it is counted as a
	// restart: a reader that sees the new count also sees what Starting
	// set (read Status first, then the hook's state).
	Starting func()
	// Started is called once a run has started, with its PID.
	Started func(pid int)
	// Exited is called after a run ended by itself or by RestartNow
	// (exit.Requested), or failed to start (err; exit then holds only
	// Ran and Requested), before the wait for the next start. A run ended by the end of Run's
	// context is not reported.
	Exited func(exit Exit, err error)
	// Waiting is called before the wait for the next start: delay long
	// (0 after RestartNow), or, when down, until RestartNow, because the
	// policy keeps the thing down.
	Waiting func(delay time.Duration, down bool)
}

// Supervisor runs a Runner under a Policy. Make one with New.
type Supervisor struct {
	runner Runner
	policy Policy
	hooks  Hooks

	// Time is a seam for tests: no test waits out a real backoff.
	now   func() time.Time
	after func(time.Duration) <-chan time.Time

	// wake is RestartNow's signal between runs; it holds at most one.
	wake chan struct{}

	mu        sync.Mutex
	cancelRun context.CancelFunc // ends the running run; nil between runs
	requested bool               // RestartNow ended the running run
	restarts  int
	lastExit  *Exit
}

// New returns a Supervisor that runs r under p, telling h; nothing runs
// before Run.
func New(r Runner, p Policy, h Hooks) *Supervisor {
	if p.Backoff == (Backoff{}) {
		p.Backoff = DefaultBackoff
	}
	return &Supervisor{runner: r, policy: p, hooks: h, now: time.Now, after: time.After, wake: make(chan struct{}, 1)}
}

// Status is what a Supervisor counts.
type Status struct {
	Restarts int   // starts after the first, failed ones included
	LastExit *Exit // the last run's end (nil before the first); not one ended by Run's context
}

// Status returns the restarts so far and the last exit.
func (s *Supervisor) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Restarts: s.restarts}
	if s.lastExit != nil {
		e := *s.lastExit
		st.LastExit = &e
	}
	return st
}

// RestartNow stops the running thing and starts it again at once, or,
// when it is down (backoff, or kept down by the policy), starts it now.
// Before Run's first start it does nothing: that start is the restart.
func (s *Supervisor) RestartNow() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancelRun != nil {
		s.requested = true
		s.cancelRun()
		return
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run runs the Runner until ctx ends, restarting it as the Policy says,
// then stops it (the Runner's job) and returns. It blocks; call it once.
func (s *Supervisor) Run(ctx context.Context) {
	var delay time.Duration
	for first := true; ; first = false {
		exit, err := s.runOnce(ctx, first)
		if ctx.Err() != nil {
			return
		}
		if s.hooks.Exited != nil {
			s.hooks.Exited(exit, err)
		}
		if err == nil && !exit.Requested && !s.policy.Restart.Restarts(exit.Code) {
			s.waiting(0, true)
			select {
			case <-s.wake:
				delay = 0
				continue
			case <-ctx.Done():
				return
			}
		}
		if exit.Requested {
			delay = 0
		} else {
			delay = s.policy.Backoff.Next(delay, exit.Ran)
		}
		s.waiting(delay, false)
		if delay == 0 {
			continue
		}
		select {
		case <-s.after(delay):
		case <-s.wake:
			delay = 0
		case <-ctx.Done():
			return
		}
	}
}

// runOnce runs the Runner once in a context RestartNow can end, counting
// the start and recording its exit. Ran and Requested are set even when
// the start failed.
func (s *Supervisor) runOnce(ctx context.Context, first bool) (Exit, error) {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if s.hooks.Starting != nil {
		s.hooks.Starting()
	}
	s.mu.Lock()
	if !first {
		s.restarts++
	}
	s.cancelRun, s.requested = cancel, false
	select {
	case <-s.wake: // a RestartNow since the last run: this start is it
	default:
	}
	s.mu.Unlock()

	began := s.now()
	exit, err := s.runner.Run(runCtx, s.started)
	if err != nil {
		exit = Exit{}
	}
	exit.Ran = s.now().Sub(began)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.cancelRun = nil
	exit.Requested = s.requested
	if err == nil && ctx.Err() == nil {
		s.lastExit = &exit
	}
	return exit, err
}

func (s *Supervisor) started(pid int) {
	if s.hooks.Started != nil {
		s.hooks.Started(pid)
	}
}

func (s *Supervisor) waiting(delay time.Duration, down bool) {
	if s.hooks.Waiting != nil {
		s.hooks.Waiting(delay, down)
	}
}
