package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/agent/clock"
)

// clockAdapter serves the clock to the node API (GET and POST /v1/clock).
type clockAdapter struct{ clk *clock.Syncer }

func (a clockAdapter) Status() api.ClockStatus { return apiClockStatus(a.clk.Status()) }

func (a clockAdapter) Set(t time.Time) (api.ClockStatus, error) {
	st, err := a.clk.Set(t)
	if errors.Is(err, clock.ErrBeforeBuild) {
		err = fmt.Errorf("%w: %v", api.ErrClockRefused, err)
	}
	return apiClockStatus(st), err
}

func apiClockStatus(st clock.Status) api.ClockStatus {
	out := api.ClockStatus{
		Synced: st.Synced, Source: st.Source, Trusted: st.Trusted,
		LastSync: st.LastSync, Server: st.Server, Offset: st.Offset, LastError: st.LastError,
		Floor: st.Floor, AdminSet: st.AdminSet,
	}
	if r := st.Refused; r != nil {
		out.Refused = &api.ClockRefusal{At: r.At, Offset: r.Offset, Reason: r.Reason}
	}
	return out
}
