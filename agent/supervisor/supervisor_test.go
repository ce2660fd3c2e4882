package supervisor

import (
	"context"
	"io"
	"log/slog"
	"os/exec"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	b := Backoff{Min: time.Second, Max: 8 * time.Second}
	for _, tt := range []struct {
		prev, ran, want time.Duration
	}{
		{0, 0, time.Second},
		{time.Second, 0, 2 * time.Second},
		{4 * time.Second, time.Second, 8 * time.Second},
		{8 * time.Second, time.Second, 8 * time.Second},
		{8 * time.Second, time.Minute, time.Second},
	} {
		if got := b.Next(tt.prev, tt.ran); got != tt.want {
			t.Errorf("Next(%v, %v) = %v, want %v", tt.prev, tt.ran, got, tt.want)
		}
	}
}

func TestReaperStart(t *testing.T) {
	r := NewReaper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	exited, err := r.Start(exec.Command("/bin/sh", "-c", "exit 3"))
	if err != nil {
		t.Skip("no /bin/sh:", err)
	}
	select {
	case ws := <-exited:
		if ws.ExitStatus() != 3 {
			t.Errorf("exit status %d, want 3", ws.ExitStatus())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("exit not reported")
	}
}

func TestSupervisorRestarts(t *testing.T) {
	r := NewReaper()
	rctx, rcancel := context.WithCancel(context.Background())
	defer rcancel()
	go r.Run(rctx)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &countWriter{ch: make(chan struct{}, 10)}
	s := Host{Reaper: r, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Backoff: Backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond}}
	done := make(chan struct{})
	go func() {
		s.Run(ctx, Service{Name: "echo", Path: "/bin/sh", Args: []string{"-c", "echo hi; sleep 0.05"}, Output: out})
		close(done)
	}()
	for i := 0; i < 3; i++ {
		select {
		case <-out.ch:
		case <-time.After(5 * time.Second):
			t.Fatalf("service ran %d times, want it restarted 3 times", i)
		}
	}
	cancel()
	<-done
}

type countWriter struct{ ch chan struct{} }

func (w *countWriter) Write(b []byte) (int, error) {
	select {
	case w.ch <- struct{}{}:
	default:
	}
	return len(b), nil
}
