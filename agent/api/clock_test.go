package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a Clock that refuses times before 2026 and records what
// it was set to.
type fakeClock struct {
	mu  sync.Mutex
	st  ClockStatus
	set []time.Time
}

var clockFloor = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func (c *fakeClock) Status() ClockStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st
}

func (c *fakeClock) Set(t time.Time) (ClockStatus, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.Before(clockFloor) {
		return c.st, fmt.Errorf("%w: %s is before the image was built", ErrClockRefused, t.Format(time.RFC3339))
	}
	c.set = append(c.set, t)
	c.st = ClockStatus{Source: "admin", Trusted: true, Floor: t, AdminSet: t, Refused: c.st.Refused}
	return c.st, nil
}

func TestClockEndpoints(t *testing.T) {
	refused := &ClockRefusal{At: clockFloor, Offset: 10 * 365 * 24 * time.Hour, Reason: "NTP servers agree on 2036-01-01T00:00:00Z, more than 5 years past the last known time"}
	clk := &fakeClock{st: ClockStatus{Source: "floor", Trusted: true, Floor: clockFloor, Refused: refused}}
	e := start(t, WithClock(clk))
	ctx := context.Background()

	st, err := e.client.Clock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(st.Time); d < 0 || d > 5*time.Second {
		t.Errorf("clock time = %v, not the node's now", st.Time)
	}
	if st.Synced || st.Source != "floor" || !st.Floor.Equal(clockFloor) || st.Refused == nil || st.Refused.Reason != refused.Reason {
		t.Errorf("GET /v1/clock = %+v", st)
	}

	want := time.Date(2026, 12, 1, 17, 0, 0, 123456789, time.UTC)
	st, err = e.client.SetClock(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	if len(clk.set) != 1 || !clk.set[0].Equal(want) || st.Source != "admin" || !st.AdminSet.Equal(want) {
		t.Errorf("SetClock: set %v, reply %+v; want %v with nanoseconds", clk.set, st, want)
	}
	if !strings.Contains(e.log.String(), "api: clock set requested") {
		t.Errorf("clock set not logged:\n%s", e.log.String())
	}

	_, err = e.client.SetClock(ctx, clockFloor.Add(-time.Hour))
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(apiErr.Message, "before the image was built") {
		t.Errorf("SetClock before the build = %v, want 422 with the reason", err)
	}

	for _, tt := range []struct {
		method, path, body string
		want               int
		wantBody           string
	}{
		{"POST", "/v1/clock", `{}`, http.StatusBadRequest, "no time"},
		{"POST", "/v1/clock", `{"time": "yesterday"}`, http.StatusBadRequest, `send {\"time\"`},
		{"POST", "/v1/clock", `{"time": "2026-12-01T17:00:00Z", "force": true}`, http.StatusBadRequest, `unknown field \"force\"`},
		{"POST", "/v1/clock?now=1", `{"time": "2026-12-01T17:00:00Z"}`, http.StatusBadRequest, `unknown parameter \"now\"`},
		{"PUT", "/v1/clock", `{}`, http.StatusMethodNotAllowed, "use GET or POST"},
	} {
		t.Run(tt.method+" "+tt.path+" "+tt.body, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, e.url+tt.path, strings.NewReader(tt.body))
			resp, err := e.client.http.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.want || !strings.Contains(string(b), tt.wantBody) {
				t.Errorf("%s %s = %d %s, want %d with %s", tt.method, tt.path, resp.StatusCode, b, tt.want, tt.wantBody)
			}
		})
	}
	if len(clk.set) != 1 {
		t.Errorf("bad requests set the clock: %v", clk.set)
	}

	// A server without a clock says so.
	if _, err := start(t).client.Clock(ctx); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound {
		t.Errorf("GET /v1/clock without a clock = %v, want 404", err)
	}
}
