package services

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/cairn-edge/cairn/agent/config"
	containerd "github.com/containerd/containerd/v2/client"
)

// awaitDependencies waits until every service u depends on has been
// ready once, and reports false when Stop came first.
func (m *Manager) awaitDependencies(u *unit) bool {
	for _, d := range u.svc.DependsOn {
		select {
		case <-m.units[d].firstRdy:
		case <-u.ctx.Done():
			return false
		}
	}
	return true
}

// awaitReady marks u ready when its check passes, or kills the task when the
// check times out (the restart policy then takes over).
func (m *Manager) awaitReady(u *unit, task containerd.Task, notify *notifyListener, exited <-chan struct{}) {
	r := u.svc.Ready
	timeout := time.NewTimer(r.Wait())
	defer timeout.Stop()
	ready := func() {
		u.set(func(s *Status) {
			if s.State == StateStarting {
				s.State, s.Ready, s.LastError = StateRunning, true, ""
			}
		})
		u.rdyOnce.Do(func() { close(u.firstRdy) })
	}
	switch {
	case r.Notify && notify != nil:
		select {
		case <-notify.ready:
			ready()
			return
		case <-exited:
			return
		case <-timeout.C:
		}
	case r.TCP != 0:
		pid := task.Pid()
		if u.svc.HostNetwork {
			pid = 0
		}
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			ctx, cancel := context.WithTimeout(m.ctx, time.Second)
			err := dialTCP(ctx, pid, r.TCP)
			cancel()
			if err == nil {
				ready()
				return
			}
			select {
			case <-tick.C:
			case <-exited:
				return
			case <-timeout.C:
				goto timedOut
			}
		}
	default:
		ready()
		return
	}
timedOut:
	msg := fmt.Sprintf("not ready after %s (ready: %s); killed", r.Wait(), readyKind(r))
	m.opts.Log.Warn("service: "+msg, "service", u.svc.Name)
	u.set(func(s *Status) { s.LastError = msg })
	task.Kill(m.ctx, syscall.SIGKILL)
}

func readyKind(r config.Ready) string {
	if r.Notify {
		return "sd_notify READY=1"
	}
	return fmt.Sprintf("tcp port %d", r.TCP)
}
