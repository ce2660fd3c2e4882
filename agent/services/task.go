package services

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"

	"github.com/cairn-edge/cairn/agent/supervisor"
)

// kill sends SIGTERM to a task and SIGKILL when it outlives the stop timeout.
func (m *Manager) kill(u *unit, task containerd.Task) {
	ctx := m.ctx
	if err := task.Kill(ctx, syscall.SIGTERM); err != nil && !errdefs.IsNotFound(err) {
		m.opts.Log.Warn("service: SIGTERM failed", "service", u.svc.Name, "err", err)
	}
	ch, err := task.Wait(ctx)
	if err == nil {
		select {
		case <-ch:
			return
		case <-time.After(m.opts.StopTimeout):
		case <-ctx.Done():
			return
		}
	}
	var opts []containerd.KillOpts
	if u.svc.HostPID {
		opts = append(opts, containerd.WithKillAll) // no PID namespace to take its children down
	}
	task.Kill(ctx, syscall.SIGKILL, opts...)
}

// taskRunner is a service's supervisor.Runner: one run is one containerd
// task.
type taskRunner struct {
	m      *Manager
	u      *unit
	notify *notifyListener // its sd_notify socket, when it has one
	first  bool            // the next run is the Manager's first: adopt
}

// Run starts the service (or, on the Manager's first run, adopts its task
// left running by an earlier agent), waits for it to be ready and then for
// it to exit, riding out containerd restarts. When stop ends (Stop,
// Restart) it kills the task. It returns the exit, or an error when the
// service could not start.
func (r *taskRunner) Run(stop context.Context, started func(pid int)) (supervisor.Exit, error) {
	m, u := r.m, r.u
	ctx := m.ctx // containerd calls outlive a stop: the kill and the wait need them
	if r.notify != nil {
		r.notify.drain()
	}
	first := r.first
	r.first = false
	task, taskIO, err := m.startTask(ctx, u, r.notify, first)
	if err != nil {
		return supervisor.Exit{}, err
	}
	u.mu.Lock()
	u.task = task
	u.mu.Unlock()
	ended := false // under u.mu: this run is over, u.task is no more its task
	defer context.AfterFunc(stop, func() {
		// The task now, which a containerd restart may have reloaded.
		u.mu.Lock()
		t := u.task
		if ended {
			t = nil
		}
		u.mu.Unlock()
		if t != nil {
			m.kill(u, t)
		}
	})()
	started(int(task.Pid()))

	exited := make(chan struct{})
	go m.awaitReady(u, task, r.notify, exited)
	exit, last := m.waitExit(ctx, u, task)
	close(exited)

	u.mu.Lock()
	u.task, ended = nil, true
	u.mu.Unlock()
	if _, err := last.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
		m.opts.Log.Warn("service: delete task", "service", u.svc.Name, "err", err)
	}
	if last != task {
		// Reloaded after a containerd restart: Delete did not close our IO.
		closeIO(taskIO)
	}
	return supervisor.Exit{Code: int(exit.Code), Reason: fmt.Sprintf("exit %d", exit.Code), At: exit.At}, nil
}

// waitExit waits for task to exit, riding out containerd restarts: the task
// keeps running under its shim, so after a lost connection it waits for
// containerd to serve again and waits on the task anew.
func (m *Manager) waitExit(ctx context.Context, u *unit, task containerd.Task) (*Exit, containerd.Task) {
	for {
		ch, err := task.Wait(ctx)
		if err == nil {
			st := <-ch
			var code uint32
			var at time.Time
			if code, at, err = st.Result(); err == nil {
				return &Exit{Code: code, At: at}, task
			}
		}
		if ctx.Err() != nil {
			return &Exit{Code: containerd.UnknownExitStatus, At: time.Now()}, task
		}
		m.opts.Log.Warn("service: lost containerd; waiting for it", "service", u.svc.Name, "err", err)
		m.awaitContainerd(ctx)
		c, err := m.client.LoadContainer(ctx, u.svc.Name)
		if err == nil {
			var t containerd.Task
			if t, err = c.Task(ctx, nil); err == nil {
				task = t
				u.mu.Lock()
				u.task = t
				u.mu.Unlock()
				continue
			}
		}
		if errdefs.IsNotFound(err) {
			// Gone while containerd was away: its exit status is lost.
			return &Exit{Code: containerd.UnknownExitStatus, At: time.Now()}, task
		}
	}
}

// awaitContainerd returns once containerd answers its health check again.
func (m *Manager) awaitContainerd(ctx context.Context) {
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ok, _ := m.client.IsServing(cctx)
		cancel()
		if ok {
			return
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
		}
		delay = min(delay*2, 2*time.Second)
	}
}

func closeIO(i cio.IO) {
	if i == nil {
		return
	}
	done := make(chan struct{})
	go func() { i.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		i.Cancel()
	}
	i.Close()
}

// startTask returns the service's running task: adopted from an earlier
// agent when first and the container is what the service asks for, or else
// new, in a container (re)made from the service's image.
func (m *Manager) startTask(ctx context.Context, u *unit, notify *notifyListener, first bool) (containerd.Task, cio.IO, error) {
	if err := m.ensureServing(ctx); err != nil {
		return nil, nil, err
	}
	name := u.svc.Name
	img, err := ImportImage(ctx, m.client, u.svc.Image, filepath.Join(m.opts.ImagesDir, name), m.opts.Snapshotter)
	if err != nil {
		return nil, nil, err
	}
	hash := specHash(u.svc, img.Target().Digest.String())
	streams := cio.WithStreams(nil, u.out, u.out)

	c, err := m.client.LoadContainer(ctx, name)
	switch {
	case err == nil:
		labels, _ := c.Labels(ctx)
		task, terr := c.Task(ctx, nil)
		if first && labels[labelSpec] == hash && terr == nil {
			if st, err := task.Status(ctx); err == nil && st.Status == containerd.Running {
				if t, err := c.Task(ctx, cio.NewAttach(streams)); err == nil {
					m.opts.Log.Info("service: adopted running task", "service", name, "pid", t.Pid())
					return t, nil, nil
				}
			}
		}
		if terr == nil {
			// A task left from before (or not what is wanted): end it.
			task.Kill(ctx, syscall.SIGKILL, containerd.WithKillAll)
			if ch, err := task.Wait(ctx); err == nil {
				select {
				case <-ch:
				case <-time.After(5 * time.Second):
				}
			}
			task.Delete(ctx, containerd.WithProcessKill)
		}
		if !first && labels[labelSpec] == hash {
			break // the container from this agent's earlier start: reuse
		}
		if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
			return nil, nil, fmt.Errorf("remove old container %s: %w", name, err)
		}
		c = nil
	case !errdefs.IsNotFound(err):
		return nil, nil, fmt.Errorf("load container %s: %w", name, err)
	}
	if c == nil {
		if c, err = m.client.NewContainer(ctx, name,
			containerd.WithImage(img),
			containerd.WithSnapshotter(m.opts.Snapshotter),
			containerd.WithNewSnapshot(name, img),
			containerd.WithNewSpec(specOpts(img, u.svc, notify)...),
			containerd.WithContainerLabels(map[string]string{labelSpec: hash}),
		); err != nil {
			return nil, nil, fmt.Errorf("create container %s: %w", name, err)
		}
	}
	var taskIO cio.IO
	creator := cio.NewCreator(streams)
	task, err := c.NewTask(ctx, func(id string) (cio.IO, error) {
		i, err := creator(id)
		taskIO = i
		return i, err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("create task %s: %w", name, err)
	}
	if err := task.Start(ctx); err != nil {
		task.Delete(ctx, containerd.WithProcessKill)
		return nil, nil, fmt.Errorf("start %s: %w", name, err)
	}
	// Delete closes the task's IO itself; runOnce closes it for tasks
	// reloaded after a containerd restart.
	return task, taskIO, nil
}

// ensureServing waits (bounded) for containerd to answer.
func (m *Manager) ensureServing(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	m.awaitContainerd(cctx)
	if cctx.Err() != nil && ctx.Err() == nil {
		return fmt.Errorf("containerd at %s does not answer (is it running?)", m.opts.Address)
	}
	return ctx.Err()
}
