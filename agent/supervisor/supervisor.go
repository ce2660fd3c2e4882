package supervisor

import (
	"context"
	"io"
	"log/slog"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Service is a host process kept running by the Supervisor.
type Service struct {
	Name   string    // short name for logs, e.g. "containerd"
	Path   string    // absolute path of the executable
	Args   []string  // arguments after the program name
	Env    []string  // environment; nil means PID 1's
	Output io.Writer // stdout and stderr; nil discards
	// Exited, when set, hears how each run ended (e.g. "exit 1"), before
	// the restart delay.
	Exited func(status string)
}

// Backoff bounds restart delays: they start at Min, double after each
// quick exit up to Max, and reset once a run lasted longer than Max.
type Backoff struct {
	Min, Max time.Duration
}

// DefaultBackoff restarts after 1 s at first and at most every 30 s.
var DefaultBackoff = Backoff{Min: time.Second, Max: 30 * time.Second}

// Next returns the delay after a run that lasted ran, given the previous
// delay.
func (b Backoff) Next(prev, ran time.Duration) time.Duration {
	if ran > b.Max || prev == 0 {
		return b.Min
	}
	return min(prev*2, b.Max)
}

// Supervisor starts Services and restarts them when they exit.
type Supervisor struct {
	Reaper  *Reaper
	Log     *slog.Logger
	Backoff Backoff
}

// Run keeps svc running until ctx ends, then sends it SIGTERM. It blocks;
// run it in its own goroutine.
func (s *Supervisor) Run(ctx context.Context, svc Service) {
	var delay time.Duration
	for ctx.Err() == nil {
		cmd := exec.Command(svc.Path, svc.Args...)
		cmd.Env = svc.Env
		cmd.Stdout, cmd.Stderr = svc.Output, svc.Output
		// Its own process group, so a signal to the group reaches its
		// children too.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		started := time.Now()
		exited, err := s.Reaper.Start(cmd)
		if err != nil {
			s.Log.Error("service did not start", "service", svc.Name, "err", err)
		} else {
			s.Log.Info("service started", "service", svc.Name, "pid", cmd.Process.Pid)
			var ws unix.WaitStatus
			select {
			case ws = <-exited:
			case <-ctx.Done():
				s.stop(cmd.Process.Pid, exited)
				_ = cmd.Process.Release()
				return
			}
			_ = cmd.Process.Release()
			s.Log.Warn("service exited", "service", svc.Name, "status", describe(ws), "ran", time.Since(started).Round(time.Millisecond))
			if svc.Exited != nil {
				svc.Exited(describe(ws))
			}
		}
		delay = s.Backoff.Next(delay, time.Since(started))
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
	}
}

// StopGrace is how long a service gets to exit after SIGTERM before
// SIGKILL.
var StopGrace = 10 * time.Second

// stop sends SIGTERM to the service's process group, then SIGKILL if it
// has not exited after StopGrace.
func (s *Supervisor) stop(pid int, exited <-chan unix.WaitStatus) {
	_ = unix.Kill(-pid, unix.SIGTERM)
	select {
	case <-exited:
		return
	case <-time.After(StopGrace):
	}
	_ = unix.Kill(-pid, unix.SIGKILL)
	select {
	case <-exited:
	case <-time.After(time.Second):
	}
}

func describe(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "signal: " + ws.Signal().String()
	}
	return "exit " + itoa(ws.ExitStatus())
}

func itoa(i int) string {
	if i < 0 {
		return "-" + itoa(-i)
	}
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}
