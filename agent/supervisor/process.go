package supervisor

import (
	"context"
	"io"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// StopGrace is how long a host process gets to exit after SIGTERM before
// SIGKILL, unless its Process says otherwise.
var StopGrace = 10 * time.Second

// waitDelay bounds how long a process's exit waits for its output pipe to
// close: a grandchild left holding it must not delay the restart. A
// variable for tests.
var waitDelay = 2 * time.Second

// Process is the Runner for a host process: each Run starts Path in its
// own process group, so a stop (SIGTERM, SIGKILL after Grace) reaches its
// children too.
type Process struct {
	Path   string    // absolute path of the executable
	Args   []string  // arguments after the program name
	Env    []string  // environment; nil means this process's
	Output io.Writer // stdout and stderr; nil discards
	// Grace is the time between SIGTERM and SIGKILL (default StopGrace).
	Grace time.Duration

	// Reaper is set in PID 1 only, to the Reaper that owns wait4(-1):
	// every orphan of the system lands there, something must collect
	// them all, and the exit statuses of PID 1's own children arrive
	// through it. Any other process (cairn-agent runs cairn-kube) leaves
	// it nil, and Run waits for its own child with exec.Cmd.Wait, which
	// waits on that one child (through its pidfd on Linux 5.4 and later,
	// wait4(pid) before): a second wait4(-1) reaper would take the exit
	// statuses of every other child the process has (any os/exec use,
	// libraries included, would then fail with ECHILD), and the orphans
	// it was meant for are re-parented to PID 1 anyway.
	Reaper *Reaper
}

// Run starts the process and waits for it to exit; when ctx ends it
// stops the process group.
func (p *Process) Run(ctx context.Context, started func(pid int)) (Exit, error) {
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Env = p.Env
	cmd.Stdout, cmd.Stderr = p.Output, p.Output
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = waitDelay
	pid, exited, err := p.start(cmd)
	if err != nil {
		return Exit{}, err
	}
	started(pid)
	select {
	case e := <-exited:
		return e, nil
	case <-ctx.Done():
		return p.stop(pid, exited), nil
	}
}

// start starts cmd and returns its PID and a channel that hears its exit.
func (p *Process) start(cmd *exec.Cmd) (int, <-chan Exit, error) {
	exited := make(chan Exit, 1)
	if p.Reaper != nil {
		statuses, err := p.Reaper.Start(cmd)
		if err != nil {
			return 0, nil, err
		}
		pid := cmd.Process.Pid
		go func() {
			ws := <-statuses
			exited <- exitOf(ws)
			_ = cmd.Process.Release() // reaped already: exec.Cmd.Wait would fail
		}()
		return pid, exited, nil
	}
	if err := cmd.Start(); err != nil {
		return 0, nil, err
	}
	pid := cmd.Process.Pid
	go func() {
		err := cmd.Wait()
		if cmd.ProcessState == nil {
			exited <- Exit{Code: UnknownCode, Reason: "lost: " + err.Error(), At: time.Now()}
			return
		}
		exited <- exitOf(unix.WaitStatus(cmd.ProcessState.Sys().(syscall.WaitStatus)))
	}()
	return pid, exited, nil
}

// stop sends SIGTERM to the process group, then SIGKILL if the process
// has not exited after its grace, and returns its exit (UnknownCode when
// even SIGKILL did not end it within a second).
func (p *Process) stop(pid int, exited <-chan Exit) Exit {
	grace := p.Grace
	if grace <= 0 {
		grace = StopGrace
	}
	_ = unix.Kill(-pid, unix.SIGTERM)
	select {
	case e := <-exited:
		return e
	case <-time.After(grace):
	}
	_ = unix.Kill(-pid, unix.SIGKILL)
	select {
	case e := <-exited:
		return e
	case <-time.After(time.Second):
		return Exit{Code: UnknownCode, Reason: "did not exit after SIGKILL", At: time.Now()}
	}
}

// exitOf is how a wait status reads: a shell's code (128+n after signal
// n) and Go's words for it.
func exitOf(ws unix.WaitStatus) Exit {
	if ws.Signaled() {
		return Exit{Code: 128 + int(ws.Signal()), Reason: "signal: " + ws.Signal().String(), At: time.Now()}
	}
	return Exit{Code: ws.ExitStatus(), Reason: "exit " + strconv.Itoa(ws.ExitStatus()), At: time.Now()}
}
