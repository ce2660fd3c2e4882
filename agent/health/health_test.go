package health

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// report is what one part says in a test table.
type report struct {
	name     string
	state    State
	reason   string
	problems map[string]string
}

func TestAggregate(t *testing.T) {
	for _, tt := range []struct {
		name       string
		parts      []report
		want       State
		wantReason string
	}{
		{"no parts", nil, OK, ""},
		{"all ok", []report{{name: "services", state: OK}, {name: "clock", state: OK, reason: "confirmed by NTP"}}, OK, ""},
		{"one starting", []report{{name: "services", state: Starting, reason: "1 of 2 ready"}, {name: "clock", state: OK}}, Starting, "services: 1 of 2 ready"},
		{"degraded beats starting", []report{{name: "services", state: Starting, reason: "1 of 2 ready"}, {name: "disk", state: Degraded, reason: "nearly full"}}, Degraded, "disk: nearly full"},
		{"failed beats all, every failed part named", []report{
			{name: "services", state: Failed, reason: "nginx exited"},
			{name: "disk", state: Degraded, reason: "nearly full"},
			{name: "kubernetes", state: Failed, reason: "no PKI"},
		}, Failed, "services: nginx exited; kubernetes: no PKI"},
		{"a problem makes an ok part degraded", []report{{name: "kubernetes", state: OK, problems: map[string]string{"manifest a.yaml": "manifest a.yaml: bad"}}}, Degraded, "kubernetes: manifest a.yaml: bad"},
		{"problems follow the verdict's reason, in key order", []report{{name: "kubernetes", state: OK, reason: "ready", problems: map[string]string{"b": "second", "a": "first"}}}, Degraded, "kubernetes: ready; first; second"},
		{"a problem does not soften failed", []report{{name: "kubernetes", state: Failed, reason: "no PKI", problems: map[string]string{"disk space": "full"}}}, Failed, "kubernetes: no PKI; full"},
		{"no reason: the state stands in", []report{{name: "checks", state: Failed}}, Failed, "checks: failed"},
		{"an unknown state counts as failed", []report{{name: "x", state: "fine", reason: "typo"}, {name: "y", state: Degraded}}, "fine", "x: typo"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := New(WithLogger(discard()))
			for _, r := range tt.parts {
				p := m.Part(r.name)
				p.Set(r.state, r.reason)
				for k, v := range r.problems {
					p.Raise(k, v)
				}
			}
			s := m.Snapshot()
			if s.State != tt.want || s.Reason != tt.wantReason {
				t.Errorf("node = %s %q, want %s %q", s.State, s.Reason, tt.want, tt.wantReason)
			}
			if len(s.Parts) != len(tt.parts) {
				t.Errorf("%d parts, want %d", len(s.Parts), len(tt.parts))
			}
		})
	}
}

// TestTransitions: Since moves with the state, not with the reason;
// the history keeps state changes and problems that begin or end.
func TestTransitions(t *testing.T) {
	clock := fakeNow(t)
	m := New(WithLogger(discard()))
	p := m.Part("kubernetes")
	if s := m.Snapshot(); s.State != Starting || s.Parts[0].Reason != "not reported yet" {
		t.Fatalf("new part: %+v", s)
	}
	steps := []struct {
		do        func() bool
		wantNews  bool
		state     State
		since     int // the step (clock second) the part's Since should be at
		nChanges  int
		lastCause string
	}{
		{func() bool { p.Set(Starting, "waiting for the API server"); return true }, true, Starting, 0, 0, ""},
		{func() bool { p.Set(OK, "ready"); return true }, true, OK, 2, 1, "ready"},
		{func() bool { p.Set(OK, "ready"); return true }, true, OK, 2, 1, "ready"},
		{func() bool { return p.Raise("disk space", "20 MiB free") }, true, Degraded, 4, 2, "problem: disk space"},
		{func() bool { return p.Raise("disk space", "20 MiB free") }, false, Degraded, 4, 2, "problem: disk space"},
		{func() bool { return p.Raise("disk space", "19 MiB free") }, true, Degraded, 4, 2, "problem: disk space"},
		{func() bool { return p.Raise("manifest x", "bad") }, true, Degraded, 4, 3, "problem: manifest x"},
		{func() bool { return p.Clear("disk space") }, true, Degraded, 4, 4, "resolved: disk space"},
		{func() bool { return p.Clear("disk space") }, false, Degraded, 4, 4, "resolved: disk space"},
		{func() bool { return p.Clear("manifest x") }, true, OK, 10, 5, "resolved: manifest x"},
	}
	for i, st := range steps {
		clock.set(i + 1)
		if news := st.do(); news != st.wantNews {
			t.Errorf("step %d: news = %v, want %v", i+1, news, st.wantNews)
		}
		s := m.Snapshot()
		ps := s.Parts[0]
		if ps.State != st.state || !ps.Since.Equal(clock.at(st.since)) {
			t.Errorf("step %d: %s since +%s, want %s since +%ds", i+1, ps.State, ps.Since.Sub(clock.at(0)), st.state, st.since)
		}
		if len(s.Changes) != st.nChanges || (st.nChanges > 0 && s.Changes[st.nChanges-1].Cause != st.lastCause) {
			t.Errorf("step %d: changes %+v, want %d ending in %q", i+1, s.Changes, st.nChanges, st.lastCause)
		}
	}
	s := m.Snapshot()
	if c := s.Changes[1]; c.Part != "kubernetes" || c.From != OK || c.To != Degraded || !c.At.Equal(clock.at(4)) {
		t.Errorf("change %+v, want kubernetes ok → degraded at +4s", c)
	}
	if !s.Since.Equal(clock.at(10)) {
		t.Errorf("node since +%s, want +10s", s.Since.Sub(clock.at(0)))
	}
}

// TestNote: an event goes into the history, the state stays.
func TestNote(t *testing.T) {
	m := New(WithLogger(discard()))
	p := m.Part("kubernetes")
	p.Set(OK, "ready")
	_, changed := m.Watch()
	p.Note("cairn-kube exited (signal: killed), restarting")
	s := m.Snapshot()
	last := s.Changes[len(s.Changes)-1]
	if s.State != OK || len(s.Changes) != 2 || last.From != OK || last.To != OK || last.Cause != "cairn-kube exited (signal: killed), restarting" {
		t.Errorf("after Note: %s, changes %+v", s.State, s.Changes)
	}
	select {
	case <-changed:
	default:
		t.Error("Note woke no watcher")
	}
}

func TestChangesBounded(t *testing.T) {
	m := New(WithLogger(discard()))
	p := m.Part("checks")
	for i := range 3 * maxChanges {
		p.Set([]State{OK, Failed}[i%2], "")
	}
	s := m.Snapshot()
	if len(s.Changes) != maxChanges || s.Changes[maxChanges-1].To != Failed {
		t.Errorf("%d changes, the last %+v; want %d, the last to failed", len(s.Changes), s.Changes[len(s.Changes)-1], maxChanges)
	}
}

// TestAttachLate: a part reports before the model knows it (Kubernetes
// starts before the agent attaches its part); attaching shows it at once.
func TestAttachLate(t *testing.T) {
	m := New(WithLogger(discard()))
	p := NewPart("kubernetes")
	p.Set(Failed, "no join kubeconfig")
	_, changed := m.Watch()
	m.Attach(p)
	select {
	case <-changed:
	default:
		t.Error("Attach woke no watcher")
	}
	if s := m.Snapshot(); s.State != Failed || s.Reason != "kubernetes: no join kubeconfig" {
		t.Errorf("after Attach: %s %q", s.State, s.Reason)
	}
	if s := m.Snapshot(); len(s.Changes) != 1 || s.Changes[0].To != Failed || s.Changes[0].Cause != "no join kubeconfig" {
		t.Errorf("history %+v, want the change made before Attach", s.Changes)
	}
	defer func() {
		if recover() == nil {
			t.Error("attaching kubernetes twice did not panic")
		}
	}()
	m.Attach(NewPart("kubernetes"))
}

func TestWait(t *testing.T) {
	for _, tt := range []struct {
		name    string
		pred    func(Snapshot) bool
		later   func(svcs, clock *Part) // runs after Wait began
		wantErr string                  // "" for success
	}{
		{"healthy already", Healthy, nil, ""},
		{"healthy after a change", Healthy, func(svcs, clock *Part) { svcs.Set(Failed, "nginx exited"); svcs.Set(OK, "") }, ""},
		{"deadline says why", Healthy, func(svcs, clock *Part) { svcs.Set(Starting, "nginx starting") }, "health: node starting: services: nginx starting: context deadline exceeded"},
		{"a gate ignoring the clock", PartsOK("services"), func(svcs, clock *Part) { clock.Set(Degraded, "no NTP"); svcs.Set(OK, "") }, ""},
		{"a part the model lacks never passes", PartsOK("checks"), nil, "health: node ok but not as asked: context deadline exceeded"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := New(WithLogger(discard()))
			svcs, clock := m.Part("services"), m.Part("clock")
			svcs.Set(OK, "")
			clock.Set(OK, "")
			if tt.later != nil {
				svcs.Set(Starting, "services starting")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			if tt.later != nil {
				go func() {
					time.Sleep(10 * time.Millisecond)
					tt.later(svcs, clock)
				}()
			}
			began := time.Now()
			s, err := m.Wait(ctx, tt.pred)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Wait: %v", err)
			case tt.wantErr == "" && !tt.pred(s):
				t.Errorf("Wait returned %+v, which the predicate refuses", s)
			case tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr || !errors.Is(err, context.DeadlineExceeded)):
				t.Errorf("Wait: %v, want %q", err, tt.wantErr)
			case tt.wantErr == "" && time.Since(began) > 150*time.Millisecond:
				t.Errorf("Wait took %s: the change did not wake it", time.Since(began))
			}
		})
	}
}

func TestLowSpace(t *testing.T) {
	const MiB, GiB = 1 << 20, 1 << 30
	for _, tt := range []struct {
		name       string
		free, size uint64
		was, want  bool
	}{
		{"plenty", 10 * GiB, 32 * GiB, false, false},
		{"under 5 %", 1 * GiB, 32 * GiB, false, true},
		{"just over 5 %", 1700 * MiB, 32 * GiB, false, false},
		{"just over 5 %, was low: still low until 6 %", 1700 * MiB, 32 * GiB, true, true},
		{"over 6 %, was low", 2 * GiB, 32 * GiB, true, false},
		{"small disk: 64 MiB floor", 60 * MiB, 512 * MiB, false, true},
		{"small disk, enough", 100 * MiB, 512 * MiB, false, false},
		{"full", 0, 4 * GiB, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := LowSpace(tt.free, tt.size, tt.was); got != tt.want {
				t.Errorf("LowSpace(%d MiB of %d MiB, was %v) = %v, want %v", tt.free>>20, tt.size>>20, tt.was, got, tt.want)
			}
		})
	}
}

func TestDisk(t *testing.T) {
	var free atomic.Uint64
	var fail, ro atomic.Bool
	d := NewDisk("/var")
	d.Log = discard()
	d.Statfs = func(path string, st *unix.Statfs_t) error {
		if fail.Load() {
			return unix.EIO
		}
		st.Bsize, st.Blocks, st.Bavail = 4096, 4<<30/4096, free.Load()/4096
		if ro.Load() {
			st.Flags |= unix.ST_RDONLY
		}
		return nil
	}
	for _, tt := range []struct {
		name       string
		free       uint64
		fail, ro   bool
		want       State
		wantLow    bool
		wantReason string
	}{
		{"plenty", 3 << 30, false, false, OK, false, "3072 MiB free of 4096 MiB"},
		{"nearly full", 20 << 20, false, false, Degraded, true, "CAIRN-DATA is nearly full: 20 MiB free of 4096 MiB: free space"},
		{"a failed look keeps the verdict", 0, true, false, Degraded, true, "CAIRN-DATA is nearly full: 20 MiB free of 4096 MiB"},
		{"just over the limit: still low", 210 << 20, false, false, Degraded, true, "210 MiB free"},
		{"space back", 1 << 30, false, false, OK, false, "1024 MiB free of 4096 MiB"},
		{"remounted read-only", 1 << 30, false, true, Failed, false, "CAIRN-DATA is read-only: the kernel found its file system damaged"},
	} {
		free.Store(tt.free)
		fail.Store(tt.fail)
		ro.Store(tt.ro)
		_, changed := d.Watch()
		d.look()
		<-changed
		r, _ := d.Watch()
		st := d.Part().Status()
		if st.State != tt.want || r.Low != tt.wantLow || !strings.Contains(st.Reason, tt.wantReason) || (r.Err != nil) != tt.fail {
			t.Errorf("%s: part %s %q, reading %+v; want %s %q low %v", tt.name, st.State, st.Reason, r, tt.want, tt.wantReason, tt.wantLow)
		}
	}
	fresh := NewDisk("/var")
	fresh.Log, fresh.Statfs = discard(), func(string, *unix.Statfs_t) error { return unix.ENOENT }
	fresh.look()
	if st := fresh.Part().Status(); st.State != Degraded || !strings.Contains(st.Reason, "free space unknown") {
		t.Errorf("never read: %s %q", st.State, st.Reason)
	}
}

func TestChecks(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	closed.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			w.Write([]byte("ok"))
		case "/moved":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		default:
			http.Error(w, "broken", http.StatusInternalServerError)
		}
	}))
	defer srv.Close()

	for _, tt := range []struct {
		check   Checker
		wantErr string
	}{
		{TCPCheck{Address: ln.Addr().String()}, ""},
		{TCPCheck{Address: closedAddr, Timeout: time.Second}, "connection refused"},
		{HTTPCheck{URL: srv.URL + "/healthz"}, ""},
		{HTTPCheck{URL: srv.URL + "/moved"}, ""},
		{HTTPCheck{URL: srv.URL + "/broken"}, "answered 500 Internal Server Error"},
		{HTTPCheck{URL: "http://" + closedAddr + "/", Timeout: time.Second}, "connection refused"},
		{HTTPCheck{URL: "::not a url"}, "missing protocol scheme"},
	} {
		t.Run(tt.check.String(), func(t *testing.T) {
			err := tt.check.Check(context.Background())
			if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Check = %v, want %q", err, tt.wantErr)
			}
		})
	}

	m := New(WithLogger(discard()))
	p := m.Part("checks")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		RunChecks(ctx, p, time.Hour, TCPCheck{Address: ln.Addr().String()}, HTTPCheck{URL: srv.URL + "/broken"})
		close(done)
	}()
	s, err := m.Wait(ctxTimeout(t, 5*time.Second), func(s Snapshot) bool { return s.State != Starting })
	cancel()
	<-done
	if err != nil || s.State != Failed || s.Reason != "checks: http "+srv.URL+"/broken: answered 500 Internal Server Error" {
		t.Errorf("RunChecks: %s %q, %v", s.State, s.Reason, err)
	}
}

func TestStateOrder(t *testing.T) {
	var got []State
	for _, s := range []State{Failed, OK, Degraded, Starting} {
		got = append(got, s)
	}
	slices.SortFunc(got, func(a, b State) int { return a.rank() - b.rank() })
	if !slices.Equal(got, States) || !Failed.Worse(Degraded) || !Degraded.Worse(Starting) || !Starting.Worse(OK) || OK.Worse(OK) {
		t.Errorf("order %v, want %v", got, States)
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// fakeClock is now() stepping in whole seconds from a fixed start.
type fakeClock struct{ sec atomic.Int64 }

var start = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func (c *fakeClock) set(sec int)          { c.sec.Store(int64(sec)) }
func (c *fakeClock) at(sec int) time.Time { return start.Add(time.Duration(sec) * time.Second) }
func (c *fakeClock) now() time.Time       { return c.at(int(c.sec.Load())) }

// fakeNow makes now() a fakeClock at +0s for the test.
func fakeNow(t *testing.T) *fakeClock {
	c := &fakeClock{}
	old := now
	now = c.now
	t.Cleanup(func() { now = old })
	return c
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
