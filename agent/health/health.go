// Package health is the node's one health model: each part of the node
// (system services, Kubernetes, disk space of CAIRN-DATA, the clock, user
// checks) reports a State with a reason, and the Model joins them into one
// node state and reason, remembers what changed and when, and lets readers
// wait for the state they need. The node API's status and /metrics and the
// console lines about readiness and problems read this one model rather
// than asking each part on their own; the upgrade's health gate is to ask
// it too, with Wait and a deadline.
//
//	m := health.New(health.WithLogger(log))
//	svcs := m.Part("services")
//	svcs.Set(health.Starting, "2 of 3 services ready")
//	disk := health.NewDisk("/var")
//	m.Attach(disk.Part())
//	go disk.Run(ctx)
//	…
//	// The upgrade gate: healthy within five minutes, or why not.
//	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
//	defer cancel()
//	if _, err := m.Wait(ctx, health.Healthy); err != nil {
//		return fmt.Errorf("not committing: %w", err) // names the parts and their reasons
//	}
//
// A part's state is its own verdict (Set) made at least Degraded by the
// lasting problems it holds (Raise until Clear): a Kubernetes that runs but
// has a malformed manifest is degraded, not failed.
//
// User checks (TCPCheck, HTTPCheck, RunChecks) are implemented here but no
// spec key feeds them yet: the upgrade work adds `update.checks` and runs
// them as the "checks" part.
package health

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// State is how a part, or the whole node, is doing.
type State string

// The states, from best to worst. The node is in the worst state of its
// parts.
const (
	// OK: working as it should.
	OK State = "ok"
	// Starting: not working yet, and expected to get there by itself
	// (services being started, Kubernetes coming up, no NTP answer yet).
	Starting State = "starting"
	// Degraded: working, with a problem the user should look at (a disk
	// nearly full, a clock never confirmed by NTP, a malformed manifest).
	Degraded State = "degraded"
	// Failed: not working (a service that exited, Kubernetes that cannot
	// start, a user check that does not answer).
	Failed State = "failed"
)

// States lists every State from best to worst, the order metrics report
// them in.
var States = []State{OK, Starting, Degraded, Failed}

// rank orders states from best (0) to worst; unknown states count as
// failed, so a typo never reads as healthy.
func (s State) rank() int {
	if i := slices.Index(States, s); i >= 0 {
		return i
	}
	return len(States) - 1
}

// Worse reports whether s is worse than t.
func (s State) Worse(t State) bool { return s.rank() > t.rank() }

// Snapshot is the model at one moment: the node's state and each part's.
type Snapshot struct {
	// State is the worst state of the parts (OK with no parts).
	State State `json:"state"`
	// Reason says why the node is not OK: the reasons of the parts in
	// State, each as "part: reason", joined by "; ". Empty when OK.
	Reason string `json:"reason,omitempty"`
	// Since is when State was entered.
	Since time.Time `json:"since"`
	// Parts are the parts in the order they were attached.
	Parts []PartStatus `json:"parts"`
	// Changes are the latest changes of the parts' states and problems,
	// oldest first (at most maxChanges).
	Changes []Change `json:"changes,omitempty"`
}

// PartStatus is one part's state.
type PartStatus struct {
	Name  string `json:"name"`
	State State  `json:"state"`
	// Reason is the part's own verdict's reason followed by its
	// problems' messages, joined by "; ".
	Reason string `json:"reason,omitempty"`
	// Since is when State was entered.
	Since time.Time `json:"since"`
	// Problems are the lasting problems the part holds (Raise), in key
	// order.
	Problems []string `json:"problems,omitempty"`
}

// Change is one change of a part: its state, a problem it holds beginning
// or ending, or an event it noted.
type Change struct {
	At   time.Time `json:"at"`
	Part string    `json:"part"`
	From State     `json:"from"`
	To   State     `json:"to"`
	// Cause is what changed: the new reason, "problem: KEY",
	// "resolved: KEY", or an event's message (Part.Note).
	Cause string `json:"cause"`
}

// Part returns the named part's status and whether the snapshot has it.
func (s Snapshot) Part(name string) (PartStatus, bool) {
	for _, p := range s.Parts {
		if p.Name == name {
			return p, true
		}
	}
	return PartStatus{}, false
}

// Healthy is the predicate for a node in state OK, for Wait.
func Healthy(s Snapshot) bool { return s.State == OK }

// PartsOK is a predicate for Wait: every named part is attached and OK,
// whatever the others are (an upgrade gate may ignore the clock).
func PartsOK(names ...string) func(Snapshot) bool {
	return func(s Snapshot) bool {
		for _, n := range names {
			if p, ok := s.Part(n); !ok || p.State != OK {
				return false
			}
		}
		return true
	}
}

// maxChanges is how many changes a Model keeps.
const maxChanges = 32

// now is the clock, a seam for tests.
var now = time.Now

// Model joins parts into the node's health. Make one with New; it is safe
// for concurrent use.
type Model struct {
	log *slog.Logger

	mu      sync.Mutex
	parts   []*Part
	changes []Change
	state   State
	since   time.Time
	// changed is closed, and replaced, at every change (Watch).
	changed chan struct{}
}

// Option configures a Model.
type Option func(*Model)

// WithLogger sets where the model logs the node's state changes
// (slog.Default() otherwise).
func WithLogger(l *slog.Logger) Option { return func(m *Model) { m.log = l } }

// New returns a Model without parts (state OK).
func New(opts ...Option) *Model {
	m := &Model{log: slog.Default(), state: OK, since: now(), changed: make(chan struct{})}
	for _, o := range opts {
		o(m)
	}
	return m
}

// Part makes a part called name (state Starting until it reports) and
// attaches it.
func (m *Model) Part(name string) *Part {
	p := NewPart(name)
	m.Attach(p)
	return p
}

// Attach adds parts that their owners made (NewPart): Kubernetes owns its
// part from the moment it starts, before the agent attaches it. A part
// belongs to one model; attaching a name twice panics, being a bug.
func (m *Model) Attach(parts ...*Part) {
	for _, p := range parts {
		m.mu.Lock()
		for _, q := range m.parts {
			if q.name == p.name {
				m.mu.Unlock()
				panic(fmt.Sprintf("health: part %q attached twice", p.name))
			}
		}
		m.parts = append(m.parts, p)
		m.mu.Unlock()
		p.attach(m)
	}
}

// record takes a change of one of the model's parts: it keeps it, works
// out the node's state again and wakes the watchers. Parts call it
// without holding their own lock.
func (m *Model) record(c Change) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keep(c)
	m.wake()
}

// keep adds changes to the history, dropping the oldest beyond
// maxChanges; m.mu is held.
func (m *Model) keep(cs ...Change) {
	m.changes = append(m.changes, cs...)
	if len(m.changes) > maxChanges {
		m.changes = slices.Delete(m.changes, 0, len(m.changes)-maxChanges)
	}
}

// wake works out the node's state and closes the change channel; m.mu is
// held.
func (m *Model) wake() {
	state, reason := aggregate(m.statuses())
	if state != m.state {
		// Debug: the console already says what matters in its contract
		// lines; status and metrics show the rest.
		m.log.Debug("node health", "state", state, "was", m.state, "reason", reason)
		m.state, m.since = state, now()
	}
	close(m.changed)
	m.changed = make(chan struct{})
}

// statuses reads every part; m.mu is held.
func (m *Model) statuses() []PartStatus {
	out := make([]PartStatus, 0, len(m.parts))
	for _, p := range m.parts {
		out = append(out, p.Status())
	}
	return out
}

// aggregate is the node's state, the worst of parts, and its reason.
func aggregate(parts []PartStatus) (State, string) {
	state := OK
	for _, p := range parts {
		if p.State.Worse(state) {
			state = p.State
		}
	}
	if state == OK {
		return OK, ""
	}
	var why []string
	for _, p := range parts {
		if p.State == state {
			r := p.Reason
			if r == "" {
				r = string(p.State)
			}
			why = append(why, p.Name+": "+r)
		}
	}
	return state, strings.Join(why, "; ")
}

// Snapshot returns the model now.
func (m *Model) Snapshot() Snapshot {
	s, _ := m.Watch()
	return s
}

// Watch returns the model now and a channel closed at the next change, for
// readers that follow it (the console, a gate with its own rules).
func (m *Model) Watch() (Snapshot, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	parts := m.statuses()
	state, reason := aggregate(parts)
	since := m.since
	if state != m.state {
		// A part changed and its record is on the way: not yet a
		// transition the model logged, but already the truth.
		since = now()
	}
	return Snapshot{State: state, Reason: reason, Since: since, Parts: parts, Changes: slices.Clone(m.changes)}, m.changed
}

// Wait returns the first snapshot ok accepts, checking now and at every
// change. When ctx ends first it returns the last snapshot and an error
// that says what the node is and why, wrapping ctx.Err().
func (m *Model) Wait(ctx context.Context, ok func(Snapshot) bool) (Snapshot, error) {
	for {
		s, changed := m.Watch()
		if ok(s) {
			return s, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			if s.State == OK {
				return s, fmt.Errorf("health: node ok but not as asked: %w", ctx.Err())
			}
			return s, fmt.Errorf("health: node %s: %s: %w", s.State, s.Reason, ctx.Err())
		}
	}
}
