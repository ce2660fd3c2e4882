package main

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/agent/api"
)

// cliClock is a node's clock 10 years ahead after believing a spoofer
// (an agent before the agreement rules), until it is set.
type cliClock struct {
	mu  sync.Mutex
	off time.Duration
	set []time.Time
}

func (c *cliClock) Status() api.ClockStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := api.ClockStatus{Source: "rtc", LastError: "step refused: NTP servers disagree", Floor: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		Refused: &api.ClockRefusal{At: time.Date(2026, 12, 1, 17, 0, 0, 0, time.UTC), Reason: "NTP servers disagree: 10.0.0.1:123 says 2036-…"}}
	if len(c.set) > 0 {
		st.Source, st.Trusted, st.AdminSet = "admin", true, c.set[0]
	}
	return st
}

func (c *cliClock) Set(t time.Time) (api.ClockStatus, error) {
	c.mu.Lock()
	c.set = append(c.set, t)
	c.mu.Unlock()
	return c.Status(), nil
}

func TestNodeClock(t *testing.T) {
	clk := &cliClock{}
	config, _ := nodeFixture(t, t.TempDir(), api.WithClock(clk))
	tests := []struct {
		name    string
		args    []string
		want    string
		wantErr string
	}{
		{"clock", []string{"--config", config, "clock"}, "sync              not confirmed by NTP: step refused: NTP servers disagree", ""},
		{"refused step", []string{"--config", config, "clock"}, "refused step      2026-12-01T17:00:00Z: NTP servers disagree: 10.0.0.1:123 says 2036-…", ""},
		{"difference", []string{"--config", config, "clock"}, "difference        node ", ""},
		{"json", []string{"--config", config, "clock", "--json"}, `"source": "rtc"`, ""},
		{"set", []string{"--config", config, "clock", "set"}, "node clock set to this workstation's time", ""},
		{"set: the status after", []string{"--config", config, "clock", "set"}, "source            set by an administrator at", ""},
		{"unknown", []string{"--config", config, "clock", "reset"}, "", `unknown clock command "reset"`},
		{"too many", []string{"--config", config, "clock", "set", "now"}, "", `unexpected argument "now" to cairn node clock set`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkNodeCommand(t, tt.args, tt.want, tt.wantErr) })
	}
	clk.mu.Lock()
	defer clk.mu.Unlock()
	if len(clk.set) != 2 {
		t.Fatalf("clock set %d times, want 2", len(clk.set))
	}
	if d := time.Since(clk.set[0]); d < -time.Second || d > 5*time.Second {
		t.Errorf("clock set to %v, not this workstation's time", clk.set[0])
	}
}

// TestDifference words the node's offset from the workstation.
func TestDifference(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                       "in step",
		500 * time.Microsecond:  "in step",
		1500 * time.Millisecond: "1.5s ahead",
		-90 * time.Second:       "1m30s behind",
	} {
		if got := difference(d); !strings.Contains(got, want) {
			t.Errorf("difference(%v) = %q, want %q", d, got, want)
		}
	}
}
