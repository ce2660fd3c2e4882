package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"
)

// The clock endpoints:
//
//	GET  /v1/clock    ClockStatus: the node's time and how far it is trusted
//	POST /v1/clock    ClockSetRequest → ClockStatus; 422 for a time the node refuses
//
// POST is how an administrator fixes a clock NTP cannot (cairn node clock
// set sends the workstation's time): it sets the clock and the saved
// floor, and the node trusts the time from then on.

// Clock is the node's clock (agent/clock's Syncer, through the agent).
type Clock interface {
	// Status returns the clock's state; Time is filled by the server.
	Status() ClockStatus
	// Set sets the clock and the floor to t. A time the node refuses
	// (before its image was built) wraps ErrClockRefused.
	Set(t time.Time) (ClockStatus, error)
}

// ErrClockRefused is what Clock.Set returns, wrapped, for a time it will
// not take; the API answers 422.
var ErrClockRefused = errors.New("time refused")

// ClockStatus is the node's clock as GET /v1/clock reports it. It
// mirrors agent/clock's Status, converted by the agent as Service is from
// agent/services': the API's wire types stay its own, and this package
// does not import the one that sets the clock.
type ClockStatus struct {
	// Time is the node's time when it answered.
	Time time.Time `json:"time"`
	// Synced: NTP servers that agree confirmed the clock since boot.
	Synced bool `json:"synced"`
	// Source is where the time comes from: "ntp", "admin", "floor"
	// (set forward to the last known time at boot) or "rtc".
	Source string `json:"source,omitempty"`
	// Trusted: the node saves the time as its floor (synced, set by an
	// administrator, or running on from the floor).
	Trusted   bool          `json:"trusted"`
	LastSync  time.Time     `json:"lastSync,omitzero"`
	Server    string        `json:"server,omitempty"`
	Offset    time.Duration `json:"offset"`
	LastError string        `json:"lastError,omitempty"`
	// Floor is the earliest time the clock may show (the saved or the
	// build time); no NTP step goes before it, nor more than 10 years
	// past the build time.
	Floor    time.Time `json:"floor,omitzero"`
	AdminSet time.Time `json:"adminSet,omitzero"`
	// Refused is the last NTP step the node did not take.
	Refused *ClockRefusal `json:"refused,omitempty"`
}

// ClockRefusal is a step the clock did not take, and why.
type ClockRefusal struct {
	At     time.Time     `json:"at"`
	Offset time.Duration `json:"offset"`
	Reason string        `json:"reason"`
}

// ClockSetRequest is POST /v1/clock's body.
type ClockSetRequest struct {
	// Time is the time to set, RFC 3339 with nanoseconds.
	Time time.Time `json:"time"`
}

// WithClock serves the clock endpoints.
func WithClock(c Clock) Option {
	return func(s *Server) { s.clock = c }
}

// maxClockRequest bounds POST /v1/clock's body.
const maxClockRequest = 1 << 10

// clockStatus is GET /v1/clock.
func (s *Server) clockStatus(w http.ResponseWriter, r *http.Request) {
	if !query(w, r) || !s.hasClock(w) {
		return
	}
	st := s.clock.Status()
	st.Time = time.Now().UTC()
	writeJSON(w, http.StatusOK, st)
}

// setClock is POST /v1/clock: 200 with the new status, 400 for a body
// that is not a ClockSetRequest, 422 for a time the node refuses.
func (s *Server) setClock(w http.ResponseWriter, r *http.Request) {
	if !query(w, r) || !s.hasClock(w) {
		return
	}
	var req ClockSetRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxClockRequest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.Time.IsZero() {
		if err == nil {
			err = errors.New("no time")
		}
		writeError(w, http.StatusBadRequest, "clock request: %v (send {\"time\": \"2026-12-01T17:00:00.123456789Z\"})", err)
		return
	}
	s.log.Warn("api: clock set requested", "time", req.Time.UTC().Format(time.RFC3339Nano), "remote", r.RemoteAddr)
	st, err := s.clock.Set(req.Time)
	switch {
	case errors.Is(err, ErrClockRefused):
		writeError(w, http.StatusUnprocessableEntity, "%v", err)
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, "setting the clock: %v", err)
		return
	}
	st.Time = time.Now().UTC()
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) hasClock(w http.ResponseWriter) bool {
	if s.clock == nil {
		writeError(w, http.StatusNotFound, "this node's agent serves no clock endpoint")
		return false
	}
	return true
}
