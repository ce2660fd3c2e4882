package supervisor

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// output is an Output that is not a file, so os/exec copies through a
// pipe, as it does for cairn-kube's log. Each write arrives on the
// channel.
type output chan string

func (o output) Write(p []byte) (int, error) {
	o <- string(p)
	return len(p), nil
}

// all is what was written, once the writer is done.
func (o output) all() string {
	var s strings.Builder
	for {
		select {
		case w := <-o:
			s.WriteString(w)
		default:
			return s.String()
		}
	}
}

// TestProcess runs sh without a Reaper, as cairn-agent runs cairn-kube.
func TestProcess(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	for _, tt := range []struct {
		name   string
		script string
		stop   bool // end the context once it runs
		want   Exit
		output string
	}{
		{"exit code", "echo hi; exit 3", false, Exit{Code: 3, Reason: "exit 3"}, "hi\n"},
		{"killed", "kill -KILL $$", false, Exit{Code: 137, Reason: "signal: killed"}, ""},
		{"stopped with SIGTERM", "exec sleep 60", true, Exit{Code: 143, Reason: "signal: terminated"}, ""},
		{"SIGKILL after the grace", "trap '' TERM; echo up; sleep 60", true, Exit{Code: 137, Reason: "signal: killed"}, "up\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := make(output, 100)
			p := &Process{Path: sh, Args: []string{"-c", tt.script}, Output: out, Grace: 100 * time.Millisecond}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var pid int
			var said string
			got, err := p.Run(ctx, func(n int) {
				pid = n
				if tt.stop && tt.output != "" {
					said = <-out // the shell set its trap
				}
				if tt.stop {
					cancel()
				}
			})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if pid <= 0 {
				t.Errorf("started with pid %d", pid)
			}
			if got.At.IsZero() {
				t.Error("Exit.At not set")
			}
			got.At = time.Time{}
			if got != tt.want {
				t.Errorf("Run = %+v, want %+v", got, tt.want)
			}
			if o := said + out.all(); o != tt.output {
				t.Errorf("output %q, want %q", o, tt.output)
			}
		})
	}
}

func TestProcessNotStarted(t *testing.T) {
	p := &Process{Path: "/nonexistent/cairn-test"}
	_, err := p.Run(context.Background(), func(int) { t.Error("started called for a start that failed") })
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/cairn-test") {
		t.Errorf("Run = %v, want an error naming the path", err)
	}
}

// TestProcessLeftoverPipe: a grandchild holding the output pipe does not
// hold up the exit.
func TestProcessLeftoverPipe(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	defer func(d time.Duration) { waitDelay = d }(waitDelay)
	waitDelay = 50 * time.Millisecond
	p := &Process{Path: sh, Args: []string{"-c", "sleep 60 & exit 4"}, Output: make(output, 100)}
	var pid int
	done := make(chan Exit, 1)
	go func() {
		e, _ := p.Run(context.Background(), func(n int) { pid = n })
		done <- e
	}()
	select {
	case e := <-done:
		unix.Kill(-pid, unix.SIGKILL) // the sleep, in the same process group
		if e.Code != 4 {
			t.Errorf("Exit %+v, want code 4", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the exit waited for the grandchild")
	}
}
