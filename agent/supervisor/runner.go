package supervisor

import (
	"context"
	"time"
)

// A Runner starts one thing once (a host process, a container's task)
// and waits for it to exit. A Supervisor runs it again under its Policy;
// a fake Runner tests that policy.
type Runner interface {
	// Run starts the thing and returns once it has exited. It calls
	// started once the thing runs, with its PID (0 when it has none).
	// When ctx ends, Run stops the thing (gracefully first) and returns
	// once it has exited or given up on it. An error means it did not
	// start; started is then not called.
	Run(ctx context.Context, started func(pid int)) (Exit, error)
}

// UnknownCode is Exit.Code when how the thing ended is lost (its waiter
// went away); containerd uses the same value.
const UnknownCode = 255

// Exit is how one run ended.
type Exit struct {
	Code   int       // exit status; 128+n after signal n; UnknownCode when lost
	Reason string    // the same for people: "exit 3", "signal: killed"
	At     time.Time // when it ended

	// Set by the Supervisor:
	Ran       time.Duration // how long the run lasted, its start included
	Requested bool          // RestartNow ended it: no crash
}
