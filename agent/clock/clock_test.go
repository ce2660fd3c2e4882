package clock

import (
	"context"
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
			if st := s.Status(); st.FloorSet != tt.wantSet {
				t.Errorf("Status().FloorSet = %v, want %v", st.FloorSet, tt.wantSet)
			}
		})
	}
}

func TestSave(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lib", "cairn", "clock")
	fc := useFakeClock(t, time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC))
	s := New(Config{}, WithStateFile(path), WithLogger(quiet()))
	if err := s.Save(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if got, want := string(b), "2026-11-01T12:00:00Z\n"; got != want {
		t.Errorf("state file = %q, want %q", got, want)
	}

	// An unsynchronised clock that went backwards must not lower the floor.
	fc.mu.Lock()
	fc.t = fc.t.Add(-time.Hour)
	fc.mu.Unlock()
	if err := s.Save(); err == nil {
		t.Errorf("Save of an earlier unsynchronised time succeeded")
	}
	b, _ = os.ReadFile(path)
	if string(b) != "2026-11-01T12:00:00Z\n" {
		t.Errorf("state file changed to %q", b)
	}

	// The next boot starts from the saved time.
	fc.mu.Lock()
	fc.t = time.Unix(0, 0)
	fc.mu.Unlock()
	if set, err := New(Config{}, WithStateFile(path), WithLogger(quiet())).EnsureFloor(); !set || err != nil {
		t.Fatalf("EnsureFloor = %v, %v", set, err)
	}
	if got := now(); !got.Equal(time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("clock after reboot = %v", got)
	}
}

// TestSyncStepThenSlew runs against a real SNTP server on loopback.
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
	if d := fc.sets[0].Sub(time.Now().Add(90 * time.Second)); d < -100*time.Millisecond || d > 100*time.Millisecond {
		t.Errorf("stepped to %v, %v off the server's time", fc.sets[0], d)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("first sync did not save the time: %v", err)
	}
	st := s.Status()
	if !st.Synced || st.Server != srv.addr || st.Stratum != 2 {
		t.Errorf("Status = %+v", st)
	}

	// Later, a small offset is slewed, a large one stepped.
	srv.offset.Store(int64(40 * time.Millisecond))
	if err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(fc.slews) != 1 || fc.slews[0] < 20000 || fc.slews[0] > 60000 {
		t.Errorf("slews = %v µs, want one of about 40000", fc.slews)
	}
	srv.offset.Store(int64(-3 * time.Second))
	if err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(fc.sets) != 2 {
		t.Errorf("a 3 s offset was not stepped: %d steps", len(fc.sets))
	}
}

// TestRunRetriesWhenOffline: the server ignores the first requests (no
// network yet); Run backs off and retries until it answers.
func TestRunRetriesWhenOffline(t *testing.T) {
	old := queryTimeout
	queryTimeout = 100 * time.Millisecond
	defer func() { queryTimeout = old }()
	srv := newTestServer(t, time.Hour)
	srv.drop.Store(3)
	path := filepath.Join(t.TempDir(), "clock")
	useFakeClock(t, time.Now())
	s := New(Config{NTP: []string{"localhost:1", srv.addr}}, WithStateFile(path), WithLogger(quiet()),
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
	if q := srv.queries.Load(); q != 4 {
		t.Errorf("server saw %d queries, want 4 (3 dropped, 1 answered)", q)
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
