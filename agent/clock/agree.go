package clock

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// The rules for believing NTP. SNTP replies are unauthenticated UDP, so no
// one reply may move the clock far: a step needs samples that agree, and
// lands between the floor and a bound past the build time.
const (
	// agreeWithin is how far apart the offsets of samples that agree may
	// be. Offsets are already corrected for the round trip (RFC 4330); an
	// honest path adds tens of milliseconds of error, a spoofer years.
	agreeWithin = time.Second
	// maxDelay is the longest round trip a sample may take to count: its
	// offset is only known to ±delay/2.
	maxDelay = 2 * time.Second
	// samplesOneServer is how many fresh exchanges a step needs when one
	// server is configured (pool.ntp.org: each may be another machine).
	// With several configured, one sample from each, and two servers
	// must agree.
	samplesOneServer = 3
	// maxAhead bounds a step past the image's build time (the later of
	// its epoch and its node API CA's start: cairn-agent's buildTime). Ten years is
	// the life of the node API's CA (builder/pki.CAValidity), which is
	// made no later than the image: past it the node refuses every
	// client and needs a visit anyway, so the bound never refuses a time
	// the node could still be managed at, while a box shelved for years
	// (spares, warehouse stock) steps to the right time when it comes
	// up. It refuses what spoofers and broken servers send ("now + 10
	// years", the 2106 wrap). Refusing less far would strand exactly
	// those shelved boxes: their clock would stay at the old floor,
	// before any client certificate issued since, and not even cairn
	// node clock set would get through.
	maxAhead = 10 * 365 * 24 * time.Hour
)

// action is what a round does to the clock.
type action int

const (
	leave action = iota
	slewClock
	stepClock
)

// round is what one synchronisation knows.
type round struct {
	samples []Sample
	servers int       // configured servers
	synced  bool      // confirmed since boot: the first sync also steps small offsets
	now     time.Time // the local clock
	floor   time.Time // the earliest time the clock may show; zero: unknown
	limit   time.Time // the latest time a step may reach (stepLimit); zero: none
}

// stepLimit is the latest time a step may reach: maxAhead past the build
// time (past the floor when the build time is unknown), and never before
// the floor.
func stepLimit(build, floor time.Time) time.Time {
	base := build
	if base.IsZero() {
		base = floor
	}
	if base.IsZero() {
		return time.Time{}
	}
	limit := base.Add(maxAhead)
	if floor.After(limit) {
		limit = floor
	}
	return limit
}

// decision is what a round asks of the clock.
type decision struct {
	act    action
	offset time.Duration
	// sample is the one followed: of those that agree, the one with the
	// shortest round trip.
	sample Sample
	// confirmed says the samples agreed and the clock ends up on their
	// time: it may be trusted and saved.
	confirmed bool
	// outliers are answers that disagreed with the agreeing majority.
	outliers []Sample
	// refused says why a step was not taken; unconfirmed why the clock,
	// perhaps slewed, is not confirmed. At most one is set.
	refused, unconfirmed string
}

// decide applies the rules to a round of samples; it touches nothing.
func decide(r round) decision {
	var usable, slow []Sample
	for _, s := range r.samples {
		if s.Delay > maxDelay {
			slow = append(slow, s)
		} else {
			usable = append(usable, s)
		}
	}
	if len(usable) == 0 {
		why := "no NTP answer"
		if len(slow) > 0 {
			why = fmt.Sprintf("no NTP answer within %v round trip (%s)", maxDelay, describe(slow, r.now))
		}
		return decision{unconfirmed: why}
	}
	multi := r.servers > 1
	count := func(ss []Sample) int {
		if !multi {
			return len(ss)
		}
		return distinctServers(ss)
	}
	need := samplesOneServer
	if multi {
		need = 2
	}
	group := largestAgreeing(usable, count)
	best := slices.MinFunc(group, func(a, b Sample) int { return cmp.Compare(a.Delay, b.Delay) })
	agreed := count(group) >= need && 2*count(group) > count(usable)

	if !agreed {
		// Offsets within the slew limit may still be slewed: they move
		// the clock by half a second at most.
		if allSmall(usable) {
			best := slices.MinFunc(usable, func(a, b Sample) int { return cmp.Compare(a.Delay, b.Delay) })
			return decision{act: slewClock, offset: best.Offset, sample: best, unconfirmed: notEnough(usable, need, multi, r)}
		}
		if count(usable) < need {
			return decision{sample: best, refused: notEnough(usable, need, multi, r) + "; not stepped"}
		}
		return decision{sample: best, refused: "NTP servers disagree: " + describe(usable, r.now) + "; not stepped"}
	}

	d := decision{sample: best, offset: best.Offset, confirmed: true}
	for _, s := range usable {
		if !slices.Contains(group, s) {
			d.outliers = append(d.outliers, s)
		}
	}
	// Within the slew limit a slew does, except at the first
	// synchronisation, which steps from firstStepMin as before.
	if a := abs(best.Offset); a <= stepThreshold && (r.synced || a < firstStepMin) {
		d.act = slewClock
		return d
	}
	to := r.now.Add(best.Offset)
	agreeing := describe(group, r.now)
	switch {
	case !r.floor.IsZero() && to.Before(r.floor):
		return decision{sample: best, outliers: d.outliers, refused: fmt.Sprintf("NTP servers agree on %s, before the last known time %s (%s); not stepped: if the NTP time is right, set the clock with cairn node clock set", stamp(to), stamp(r.floor), agreeing)}
	case !r.limit.IsZero() && to.After(r.limit):
		return decision{sample: best, outliers: d.outliers, refused: fmt.Sprintf("NTP servers agree on %s, past %s, 10 years after the image was built (%s); not stepped: if the node's time is wrong, set it from a workstation with cairn node clock set", stamp(to), stamp(r.limit), agreeing)}
	}
	d.act = stepClock
	return d
}

// largestAgreeing returns the largest run of samples, by offset, that lie
// within agreeWithin of each other (count says how large; the narrower
// run wins a tie).
func largestAgreeing(ss []Sample, count func([]Sample) int) []Sample {
	sorted := slices.Clone(ss)
	slices.SortStableFunc(sorted, func(a, b Sample) int { return cmp.Compare(a.Offset, b.Offset) })
	var best []Sample
	j := 0
	for i := range sorted {
		for gap(sorted[j].Offset, sorted[i].Offset) > uint64(agreeWithin) {
			j++
		}
		run := sorted[j : i+1]
		switch n, m := count(run), count(best); {
		case n > m, n == m && spread(run) < spread(best):
			best = run
		}
	}
	return slices.Clone(best)
}

func spread(ss []Sample) uint64 {
	if len(ss) == 0 {
		return 1<<64 - 1
	}
	return gap(ss[0].Offset, ss[len(ss)-1].Offset)
}

// gap is b-a for a <= b, without overflow: offsets come off the network.
func gap(a, b time.Duration) uint64 { return uint64(b) - uint64(a) }

// abs is |d|, saturating (-MinInt64 is MinInt64, which looks small).
func abs(d time.Duration) time.Duration {
	if d < 0 {
		return max(-d, -(d + 1))
	}
	return d
}

// distinctServers counts the addresses that answered: two names of one
// machine are one server.
func distinctServers(ss []Sample) int {
	seen := map[string]bool{}
	for _, s := range ss {
		seen[s.Server] = true
	}
	return len(seen)
}

func allSmall(ss []Sample) bool {
	for _, s := range ss {
		if abs(s.Offset) > stepThreshold {
			return false
		}
	}
	return true
}

// notEnough says that too few answers came for a confirmation.
func notEnough(ss []Sample, need int, multi bool, r round) string {
	if multi {
		return fmt.Sprintf("%d of %d NTP servers answered (%s); a step or confirmation needs 2 that agree", distinctServers(ss), r.servers, describe(ss, r.now))
	}
	return fmt.Sprintf("%d of %d samples from %s (%s); a step or confirmation needs %d that agree", len(ss), need, ss[0].Name, describe(ss, r.now), need)
}

// describe lists samples as "addr says TIME (offset +1h0m0s)".
func describe(ss []Sample, now time.Time) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		addr := s.Server
		if s.Name != "" && s.Name != s.Server {
			addr = s.Name + " " + s.Server
		}
		sign := "+"
		if s.Offset < 0 {
			sign = ""
		}
		parts[i] = fmt.Sprintf("%s says %s (offset %s%v)", addr, stamp(now.Add(s.Offset)), sign, s.Offset.Round(time.Millisecond))
	}
	return strings.Join(parts, ", ")
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
