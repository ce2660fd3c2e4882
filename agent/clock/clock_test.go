package clock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeClock replaces the clock seams: the system clock reads t, setTime
// moves it, adjtimex records the slews.
type fakeClock struct {
	mu    sync.Mutex
	t     time.Time
	sets  []time.Time
	slews []int64 // µs
}

func useFakeClock(t *testing.T, start time.Time) *fakeClock {
	t.Helper()
	fc := &fakeClock{t: start}
	oldNow, oldSet, oldAdj := now, setTime, adjtimex
	now = func() time.Time { fc.mu.Lock(); defer fc.mu.Unlock(); return fc.t }
	setTime = func(t time.Time) error {
		fc.mu.Lock()
		defer fc.mu.Unlock()
		fc.t = t
		fc.sets = append(fc.sets, t)
		return nil
	}
	adjtimex = func(tx *unix.Timex) (int, error) {
		fc.mu.Lock()
		defer fc.mu.Unlock()
		if tx.Modes != unix.ADJ_OFFSET_SINGLESHOT {
			return 0, unix.EINVAL
		}
		fc.slews = append(fc.slews, int64(tx.Offset))
		return 0, nil
	}
	t.Cleanup(func() { now, setTime, adjtimex = oldNow, oldSet, oldAdj })
	return fc
}

func quiet() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func TestEnsureFloor(t *testing.T) {
	epoch := time.Unix(0, 0).UTC() // a Pi without RTC boots here
	build := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	saved := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name      string
		clock     time.Time
		build     time.Time
		file      string // "" = no state file
		wantSet   bool
		wantClock time.Time
	}{
		{name: "no RTC, saved time", clock: epoch, build: build, file: saved.Format(time.RFC3339) + "\n", wantSet: true, wantClock: saved},
		{name: "no RTC, first boot: build time", clock: epoch, build: build, wantSet: true, wantClock: build},
		{name: "saved older than build (reflashed)", clock: epoch, build: build, file: "2025-01-01T00:00:00Z\n", wantSet: true, wantClock: build},
		{name: "clock already later", clock: saved.Add(time.Hour), build: build, file: saved.Format(time.RFC3339), wantClock: saved.Add(time.Hour)},
		{name: "garbage state file: build time", clock: epoch, build: build, file: "not a time", wantSet: true, wantClock: build},
		{name: "nothing known", clock: epoch, wantClock: epoch},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fc := useFakeClock(t, tt.clock)
			path := filepath.Join(t.TempDir(), "clock")
			if tt.file != "" {
				os.WriteFile(path, []byte(tt.file), 0o644)
			}
			s := New(Config{}, WithStateFile(path), WithBuildTime(tt.build), WithLogger(quiet()))
			set, err := s.EnsureFloor()
			if set != tt.wantSet {
				t.Errorf("EnsureFloor set = %v, want %v (err %v)", set, tt.wantSet, err)
			}
			if (err != nil) != (tt.file == "not a time") {
				t.Errorf("EnsureFloor error = %v", err)
			}
			if got := now(); !got.Equal(tt.wantClock) {
				t.Errorf("clock = %v, want %v", got, tt.wantClock)
			}
			if !tt.wantSet && len(fc.sets) > 0 {
				t.Errorf("clock was set: %v", fc.sets)
			}
			st := s.Status()
			if st.FloorSet != tt.wantSet || st.Trusted != tt.wantSet {
				t.Errorf("Status() FloorSet, Trusted = %v, %v; want %v (only the floor is trusted before NTP)", st.FloorSet, st.Trusted, tt.wantSet)
			}
			if want := map[bool]string{true: SourceFloor, false: SourceRTC}[tt.wantSet]; st.Source != want {
				t.Errorf("Status().Source = %q, want %q", st.Source, want)
			}
		})
	}
}

func TestSave(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lib", "cairn", "clock")
	saved := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	fc := useFakeClock(t, saved.Add(time.Hour))
	set := func(t time.Time) { fc.mu.Lock(); fc.t = t; fc.mu.Unlock() }

	// A real-time clock nothing confirmed is not written: it may be wrong.
	s := New(Config{}, WithStateFile(path), WithLogger(quiet()))
	if err := s.Save(); !errors.Is(err, ErrUntrusted) {
		t.Errorf("Save of an unconfirmed clock = %v, want ErrUntrusted", err)
	}
	if _, err := os.Stat(path); err == nil {
		t.Errorf("Save of an unconfirmed clock wrote %s", path)
	}

	// A clock running on from the floor is.
	set(time.Unix(0, 0))
	s = New(Config{}, WithStateFile(path), WithBuildTime(saved), WithLogger(quiet()))
	if moved, err := s.EnsureFloor(); !moved || err != nil {
		t.Fatalf("EnsureFloor = %v, %v", moved, err)
	}
	set(saved.Add(time.Minute))
	if err := s.Save(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if got, want := string(b), "2026-11-01T12:01:00Z\n"; got != want {
		t.Errorf("state file = %q, want %q", got, want)
	}
	if st := s.Status(); !st.Floor.Equal(saved.Add(time.Minute)) || !st.LastSave.Equal(saved.Add(time.Minute)) {
		t.Errorf("Status Floor, LastSave = %v, %v; want both the saved time", st.Floor, st.LastSave)
	}

	// A clock that went backwards must not lower the floor.
	set(saved)
	if err := s.Save(); err == nil {
		t.Errorf("Save of an earlier time succeeded")
	}
	if b, _ := os.ReadFile(path); string(b) != "2026-11-01T12:01:00Z\n" {
		t.Errorf("state file changed to %q", b)
	}

	// The next boot starts from the saved time.
	set(time.Unix(0, 0))
	if moved, err := New(Config{}, WithStateFile(path), WithLogger(quiet())).EnsureFloor(); !moved || err != nil {
		t.Fatalf("EnsureFloor = %v, %v", moved, err)
	}
	if got := now(); !got.Equal(saved.Add(time.Minute)) {
		t.Errorf("clock after reboot = %v", got)
	}
}

// TestSet: the administrator's time sets the clock and the floor, even
// lower than a floor raised by a wrong time, but never before the build.
func TestSet(t *testing.T) {
	build := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	wrong := time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC) // saved by an old agent that believed a spoofer
	right := time.Date(2026, 12, 1, 17, 0, 0, 123456789, time.UTC)
	for _, tt := range []struct {
		name    string
		to      time.Time
		wantErr error
	}{
		{name: "lowers a floor in the future", to: right},
		{name: "raises the clock", to: wrong.Add(time.Hour)},
		{name: "before the build time", to: build.Add(-time.Hour), wantErr: ErrBeforeBuild},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fc := useFakeClock(t, time.Unix(0, 0))
			path := filepath.Join(t.TempDir(), "clock")
			os.WriteFile(path, []byte(wrong.Format(time.RFC3339)+"\n"), 0o644)
			s := New(Config{}, WithStateFile(path), WithBuildTime(build), WithLogger(quiet()))
			s.EnsureFloor()
			st, err := s.Set(tt.to)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !now().Equal(wrong) {
					t.Fatalf("Set = %v, clock %v; want %v and the clock left at the floor", err, now(), tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := fc.sets[len(fc.sets)-1]; !got.Equal(tt.to) {
				t.Errorf("clock set to %v, want %v", got, tt.to)
			}
			b, _ := os.ReadFile(path)
			if got, want := string(b), tt.to.Format(time.RFC3339Nano)+"\n"; got != want {
				t.Errorf("state file = %q, want %q", got, want)
			}
			if st.Source != SourceAdmin || !st.Trusted || st.Synced || !st.Floor.Equal(tt.to) || !st.AdminSet.Equal(tt.to) {
				t.Errorf("Status = %+v", st)
			}
		})
	}
}

// TestSyncStepThenSlew runs against a real SNTP server on loopback. Its
// offset is from the real time; the fake clock starts there.
func TestSyncStepThenSlew(t *testing.T) {
	srv := newTestServer(t, 90*time.Second)
	path := filepath.Join(t.TempDir(), "clock")
	fc := useFakeClock(t, time.Now())
	s := New(Config{NTP: []string{srv.addr}}, WithStateFile(path), WithLogger(quiet()))

	if err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(fc.sets) != 1 || len(fc.slews) != 0 {
		t.Fatalf("first sync: %d steps, %d slews; want one step", len(fc.sets), len(fc.slews))
	}
	if q := srv.queries.Load(); q != samplesOneServer {
		t.Errorf("first sync: %d queries to the one server, want %d", q, samplesOneServer)
	}
	if d := fc.sets[0].Sub(time.Now().Add(90 * time.Second)); d < -100*time.Millisecond || d > 100*time.Millisecond {
		t.Errorf("stepped to %v, %v off the server's time", fc.sets[0], d)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("first sync did not save the time: %v", err)
	}
	st := s.Status()
	if !st.Synced || !st.Trusted || st.Source != SourceNTP || st.Server != srv.addr || st.Stratum != 2 {
		t.Errorf("Status = %+v", st)
	}

	// Later, a small offset is slewed on one answer, a large one stepped
	// once three agree.
	srv.queries.Store(0)
	srv.offset.Store(int64(90*time.Second + 40*time.Millisecond))
	if err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(fc.slews) != 1 || fc.slews[0] < 20000 || fc.slews[0] > 60000 {
		t.Errorf("slews = %v µs, want one of about 40000", fc.slews)
	}
	if q := srv.queries.Load(); q != 1 {
		t.Errorf("a slew took %d queries, want 1", q)
	}
	srv.offset.Store(int64(93 * time.Second))
	if err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(fc.sets) != 2 {
		t.Errorf("a 3 s offset was not stepped: %d steps", len(fc.sets))
	}
}

// TestRunRetriesWhenOffline: the servers ignore the first requests (no
// network yet) and a third never answers; Run backs off and retries until
// two answer and agree.
func TestRunRetriesWhenOffline(t *testing.T) {
	old := queryTimeout
	queryTimeout = 100 * time.Millisecond
	defer func() { queryTimeout = old }()
	srv, srv2 := newTestServer(t, time.Hour), newTestServer(t, time.Hour)
	srv.drop.Store(3)
	srv2.drop.Store(3)
	path := filepath.Join(t.TempDir(), "clock")
	useFakeClock(t, time.Now())
	s := New(Config{NTP: []string{"localhost:1", srv.addr, srv2.addr}}, WithStateFile(path), WithLogger(quiet()),
		WithBackoff(50*time.Millisecond, 200*time.Millisecond), WithPollInterval(time.Hour))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for !s.Status().Synced {
		if time.Now().After(deadline) {
			t.Fatalf("not synced; status %+v", s.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, srv := range []*testServer{srv, srv2} {
		if q := srv.queries.Load(); q != 4 {
			t.Errorf("server saw %d queries, want 4 (3 dropped, 1 answered)", q)
		}
	}
	os.Remove(path)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || !strings.HasPrefix(string(b), "20") {
		t.Errorf("Run did not save the time at shutdown: %q, %v", b, err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		ntp []string
		ok  bool
	}{
		{[]string{"pool.ntp.org", "10.0.0.1", "ntp.example:1123", "2001:db8::1", "[2001:db8::1]:123"}, true},
		{[]string{""}, false},
		{[]string{"ntp example"}, false},
		{[]string{"http://ntp.example"}, false},
	} {
		if err := (Config{NTP: tt.ntp}).Validate(); (err == nil) != tt.ok {
			t.Errorf("Validate(%q) = %v, want ok=%v", tt.ntp, err, tt.ok)
		}
	}
}

// fakeServer is one NTP server of a TestSyncAgreement case.
type fakeServer struct {
	offset    time.Duration // from the real time
	silent    bool          // never answers
	forgeOnly bool          // answers only with replies that do not echo the request
}

// TestSyncAgreement: one round of Sync against SNTP servers on loopback,
// after EnsureFloor. Times are relative to the real time at the start
// (base); the fake clock starts at base+start, or in 1970.
func TestSyncAgreement(t *testing.T) {
	const year = 365 * 24 * time.Hour
	old := queryTimeout
	queryTimeout = 200 * time.Millisecond
	defer func() { queryTimeout = old }()
	honest := fakeServer{}
	hourAhead := fakeServer{offset: time.Hour}
	spoofer := fakeServer{offset: 10 * year}
	for _, tt := range []struct {
		name        string
		servers     []fakeServer
		epoch       bool          // the board has no RTC: the clock starts in 1970
		start       time.Duration // otherwise the clock starts at base+start
		saved       time.Duration // the state file holds base+saved
		wantClock   time.Duration // the clock after the round, base+wantClock
		wantSaved   time.Duration // the state file after the round and a Save
		wantSynced  bool
		wantRefused string // in Status().Refused and the log
		wantErr     string
		wantLog     []string // "ADDRn" stands for server n's address
	}{
		{name: "one server 10 years ahead", servers: []fakeServer{spoofer}, saved: -time.Hour,
			wantSaved: -time.Hour, wantRefused: "10 years after the image was built", wantLog: []string{"cairn node clock set", "ADDR0 says"}},
		{name: "two servers disagree", servers: []fakeServer{spoofer, honest}, saved: -time.Hour,
			wantSaved: -time.Hour, wantRefused: "NTP servers disagree", wantLog: []string{"ADDR0 says", "(offset +87600h", "ADDR1 says"}},
		{name: "two servers agree on 10 years ahead", servers: []fakeServer{spoofer, spoofer}, saved: -time.Hour,
			wantSaved: -time.Hour, wantRefused: "10 years after the image was built"},
		{name: "two servers agree on an hour ahead", servers: []fakeServer{hourAhead, hourAhead}, saved: -time.Hour,
			wantClock: time.Hour, wantSaved: time.Hour, wantSynced: true},
		{name: "one server an hour ahead, three samples", servers: []fakeServer{hourAhead}, saved: -time.Hour,
			wantClock: time.Hour, wantSaved: time.Hour, wantSynced: true},
		{name: "three servers, one 10 years ahead", servers: []fakeServer{hourAhead, spoofer, hourAhead},
			wantClock: time.Hour, wantSaved: time.Hour, wantSynced: true, wantLog: []string{"NTP server disagrees with the others", "ADDR1 says"}},
		{name: "two servers, one silent", servers: []fakeServer{hourAhead, {silent: true}}, saved: -time.Hour,
			wantSaved: -time.Hour, wantRefused: "1 of 2 NTP servers answered (ADDR0 says"},
		{name: "forged replies only", servers: []fakeServer{{forgeOnly: true}}, saved: -time.Hour,
			wantSaved: -time.Hour, wantErr: "does not echo our transmit timestamp"},
		{name: "servers agree on a time before the floor", servers: []fakeServer{honest, honest}, saved: 24 * time.Hour,
			wantClock: 24 * time.Hour, wantSaved: 24 * time.Hour, wantRefused: "before the last known time"},
		{name: "no RTC, saved floor, honest servers", servers: []fakeServer{honest, honest}, epoch: true, saved: -time.Hour,
			wantClock: 0, wantSaved: 0, wantSynced: true},
		{name: "no RTC, saved floor, a spoofer", servers: []fakeServer{spoofer}, epoch: true, saved: -time.Hour,
			wantClock: -time.Hour, wantSaved: -time.Hour, wantRefused: "10 years after the image was built"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			base := time.Now()
			start := base.Add(tt.start)
			if tt.epoch {
				start = time.Unix(0, 0)
			}
			fc := useFakeClock(t, start)
			var names []string
			for _, fs := range tt.servers {
				srv := newTestServer(t, fs.offset)
				if fs.silent {
					srv.drop.Store(1 << 30)
				}
				srv.forgeOnly.Store(fs.forgeOnly)
				names = append(names, srv.addr)
			}
			path := filepath.Join(t.TempDir(), "clock")
			os.WriteFile(path, []byte(base.Add(tt.saved).UTC().Format(time.RFC3339Nano)+"\n"), 0o644)
			var logs strings.Builder
			var logMu sync.Mutex
			log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
				logMu.Lock()
				defer logMu.Unlock()
				return logs.Write(p)
			}), nil))
			s := New(Config{NTP: names}, WithStateFile(path), WithBuildTime(base.Add(-30*24*time.Hour)), WithLogger(log))
			moved, err := s.EnsureFloor()
			if err != nil {
				t.Fatal(err)
			}
			err = s.Sync(context.Background())
			s.Save() // what Run does every 15 minutes: a no-op unless trusted

			var refused *RefusedError
			switch {
			case tt.wantRefused != "":
				if !errors.As(err, &refused) {
					t.Errorf("Sync = %v, want a refused step", err)
				}
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("Sync = %v, want %q", err, tt.wantErr)
				}
			case err != nil:
				t.Errorf("Sync: %v", err)
			}
			near := func(what string, got time.Time, want time.Duration) {
				t.Helper()
				if d := got.Sub(base.Add(want)); d < -time.Second || d > time.Second {
					t.Errorf("%s = base%+v, want base%+v", what, got.Sub(base).Round(time.Millisecond), want)
				}
			}
			near("clock", now(), tt.wantClock)
			b, _ := os.ReadFile(path)
			savedAt, perr := parseSaved(b)
			if perr != nil {
				t.Fatal(perr)
			}
			near("state file", savedAt, tt.wantSaved)
			if !tt.wantSynced && len(fc.sets) > map[bool]int{true: 1}[moved] {
				t.Errorf("clock stepped: %v", fc.sets)
			}

			st := s.Status()
			if st.Synced != tt.wantSynced || (st.Source == SourceNTP) != tt.wantSynced {
				t.Errorf("Status Synced, Source = %v, %q; want synced %v", st.Synced, st.Source, tt.wantSynced)
			}
			expand := func(s string) string {
				for i := len(names) - 1; i >= 0; i-- {
					s = strings.ReplaceAll(s, fmt.Sprintf("ADDR%d", i), names[i])
				}
				return s
			}
			if tt.wantRefused != "" {
				if st.Refused == nil || !strings.Contains(st.Refused.Reason, expand(tt.wantRefused)) {
					t.Errorf("Status().Refused = %+v, want a reason with %q", st.Refused, expand(tt.wantRefused))
				}
				if n := strings.Count(logs.String(), "clock step refused"); n != 1 {
					t.Errorf("%d warnings of the refused step, want 1:\n%s", n, logs.String())
				}
			} else if st.Refused != nil {
				t.Errorf("Status().Refused = %+v", st.Refused)
			}
			for _, w := range tt.wantLog {
				if !strings.Contains(logs.String(), expand(w)) {
					t.Errorf("log lacks %q:\n%s", expand(w), logs.String())
				}
			}
		})
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
