package supervisor

import (
	"context"
	"io"
	"log/slog"
	"time"
)

// Service is a host process kept running by a Host.
type Service struct {
	Name   string    // short name for logs, e.g. "containerd"
	Path   string    // absolute path of the executable
	Args   []string  // arguments after the program name
	Env    []string  // environment; nil means this process's
	Output io.Writer // stdout and stderr; nil discards
	// Exited, when set, hears how each run ended (exit.Reason, e.g.
	// "exit 1"; exit.Requested when RestartNow ended it), before the
	// restart delay.
	Exited func(exit Exit)
}

// Host keeps host processes running: always restarted, with Backoff
// between quick exits, each start and exit logged.
type Host struct {
	// Reaper is PID 1's Reaper; nil in any other process (see
	// Process.Reaper).
	Reaper *Reaper
	// Log hears each start and exit (default slog.Default()).
	Log *slog.Logger
	// Backoff spaces restarts; the zero Backoff means DefaultBackoff.
	Backoff Backoff
}

// Supervisor returns the Supervisor that keeps svc running; start it with
// Run.
func (h Host) Supervisor(svc Service) *Supervisor {
	if h.Log == nil {
		h.Log = slog.Default()
	}
	p := &Process{Path: svc.Path, Args: svc.Args, Env: svc.Env, Output: svc.Output, Reaper: h.Reaper}
	return New(p, Policy{Restart: Always, Backoff: h.Backoff}, Hooks{
		Started: func(pid int) {
			h.Log.Info("service started", "service", svc.Name, "pid", pid)
		},
		Exited: func(e Exit, err error) {
			if err != nil {
				h.Log.Error("service did not start", "service", svc.Name, "err", err)
				return
			}
			if !e.Requested {
				h.Log.Warn("service exited", "service", svc.Name, "status", e.Reason, "ran", e.Ran.Round(time.Millisecond))
			}
			if svc.Exited != nil {
				svc.Exited(e)
			}
		},
	})
}

// Run keeps svc running until ctx ends, then stops it (SIGTERM, SIGKILL
// after StopGrace). It blocks; run it in its own goroutine.
func (h Host) Run(ctx context.Context, svc Service) {
	h.Supervisor(svc).Run(ctx)
}
