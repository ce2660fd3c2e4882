package health

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// Part is one part of the node as the model sees it: its own verdict
// (Set) and the lasting problems it holds (Raise, Clear). Its owner
// reports; the model reads. Safe for concurrent use.
type Part struct {
	name string

	mu       sync.Mutex
	state    State
	reason   string
	problems map[string]string
	since    time.Time
	model    *Model
	// pending are the changes made before the part was attached, which
	// attach hands to the model (Kubernetes can fail before the agent
	// attaches its part).
	pending []Change
}

// NewPart returns a part called name, in state Starting, attached to no
// model yet (Model.Attach).
func NewPart(name string) *Part {
	return &Part{name: name, state: Starting, reason: "not reported yet", since: now()}
}

// Name is the part's name.
func (p *Part) Name() string { return p.name }

// attach makes m the model told about p's changes.
func (p *Part) attach(m *Model) {
	p.mu.Lock()
	p.model = m
	pending := p.pending
	p.pending = nil
	p.mu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keep(pending...)
	m.wake()
}

// Set makes state and reason the part's own verdict; its problems, if
// any, still make it at least Degraded.
func (p *Part) Set(state State, reason string) {
	p.change(func() (string, bool, bool) {
		changed := p.state != state || p.reason != reason
		p.state, p.reason = state, reason
		return reason, changed, false
	})
}

// Raise records that the problem key holds, described by msg, and reports
// whether that is news: a new key, or a new msg for it. Say it on the
// console only then.
func (p *Part) Raise(key, msg string) bool {
	return p.change(func() (string, bool, bool) {
		old, held := p.problems[key]
		if held && old == msg {
			return "", false, false
		}
		if p.problems == nil {
			p.problems = map[string]string{}
		}
		p.problems[key] = msg
		return "problem: " + key, true, !held
	})
}

// Clear records that the problem key is over and reports whether it held.
func (p *Part) Clear(key string) bool {
	return p.change(func() (string, bool, bool) {
		if _, ok := p.problems[key]; !ok {
			return "", false, false
		}
		delete(p.problems, key)
		return "resolved: " + key, true, true
	})
}

// Note records an event of the part in the model's history without
// changing its state: something that happened and is over (cairn-kube
// exited and was restarted), which a gate may still want to know about.
func (p *Part) Note(msg string) {
	p.change(func() (string, bool, bool) { return msg, true, true })
}

// change applies f under the lock, keeps Since and tells the model when f
// changed something. A new state, or a problem that begins or ends (f's
// event), goes into the model's history with f's cause; a reason or a
// message that moves with a number (MiB free) only wakes the watchers.
func (p *Part) change(f func() (cause string, changed, event bool)) bool {
	p.mu.Lock()
	from := p.effective()
	cause, changed, event := f()
	to := p.effective()
	if to != from {
		p.since = now()
	}
	historic := changed && (to != from || event)
	c := Change{At: now(), Part: p.name, From: from, To: to, Cause: cause}
	m := p.model
	if historic && m == nil {
		p.pending = append(p.pending, c)
		p.pending = p.pending[max(0, len(p.pending)-maxChanges):]
	}
	p.mu.Unlock()
	switch {
	case !changed:
		return false
	case m == nil:
	case historic:
		m.record(c)
	default:
		m.mu.Lock()
		m.wake()
		m.mu.Unlock()
	}
	return true
}

// effective is the part's state: its verdict, at least Degraded while it
// holds problems. p.mu is held.
func (p *Part) effective() State {
	if len(p.problems) > 0 && Degraded.Worse(p.state) {
		return Degraded
	}
	return p.state
}

// Keys are the keys of the problems the part holds, sorted.
func (p *Part) Keys() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Sorted(maps.Keys(p.problems))
}

// Problems are the messages of the problems the part holds, in key order.
func (p *Part) Problems() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.messages()
}

// messages is Problems with p.mu held.
func (p *Part) messages() []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(p.problems)) {
		out = append(out, p.problems[k])
	}
	return out
}

// Status is the part now.
func (p *Part) Status() PartStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	msgs := p.messages()
	var why []string
	if p.reason != "" {
		why = append(why, p.reason)
	}
	why = append(why, msgs...)
	return PartStatus{Name: p.name, State: p.effective(), Reason: strings.Join(why, "; "), Since: p.since, Problems: msgs}
}
