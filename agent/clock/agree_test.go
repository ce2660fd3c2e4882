package clock

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	floor := at.Add(-time.Hour)
	limit := stepLimit(at.AddDate(0, -6, 0), floor) // built in June
	toLimit := limit.Sub(at)
	ms := time.Millisecond
	from := func(addr string, off time.Duration) Sample {
		return Sample{Server: addr, Name: addr, Offset: off, Delay: 20 * ms}
	}
	slow := func(s Sample) Sample { s.Delay = 3 * time.Second; return s }
	for _, tt := range []struct {
		name        string
		samples     []Sample
		servers     int
		synced      bool
		want        action
		wantOffset  time.Duration
		confirmed   bool
		wantRefused string
		outliers    int
	}{
		{name: "two agree on an hour", samples: []Sample{from("a", time.Hour), from("b", time.Hour+300*ms)}, servers: 2, want: stepClock, wantOffset: time.Hour, confirmed: true},
		{name: "two a second and a half apart", samples: []Sample{from("a", time.Hour), from("b", time.Hour+1500*ms)}, servers: 2, wantRefused: "NTP servers disagree: a says"},
		{name: "two names, one machine", samples: []Sample{from("a", time.Hour), from("a", time.Hour)}, servers: 2, wantRefused: "1 of 2 NTP servers answered"},
		{name: "one of three servers off", samples: []Sample{from("a", time.Hour), from("b", 10*365*24*time.Hour), from("c", time.Hour)}, servers: 3, want: stepClock, wantOffset: time.Hour, confirmed: true, outliers: 1},
		{name: "two against two", samples: []Sample{from("a", time.Hour), from("b", time.Hour), from("c", 2*time.Hour), from("d", 2*time.Hour)}, servers: 4, wantRefused: "disagree"},
		{name: "one server, three samples", samples: []Sample{from("a", time.Hour), from("a", time.Hour), from("a", time.Hour+10*ms)}, servers: 1, want: stepClock, wantOffset: time.Hour, confirmed: true},
		{name: "one server, two samples", samples: []Sample{from("a", time.Hour), from("a", time.Hour)}, servers: 1, wantRefused: "2 of 3 samples from a"},
		{name: "slow samples do not count", samples: []Sample{from("a", time.Hour), slow(from("b", time.Hour))}, servers: 2, wantRefused: "1 of 2 NTP servers answered"},
		{name: "only slow samples", samples: []Sample{slow(from("a", time.Hour))}, servers: 1},
		{name: "synced, one small answer slews", samples: []Sample{from("a", 40*ms)}, servers: 2, synced: true, want: slewClock, wantOffset: 40 * ms},
		{name: "synced, one large answer is not enough", samples: []Sample{from("a", 3*time.Second)}, servers: 2, synced: true, wantRefused: "1 of 2"},
		{name: "first sync steps an agreed small offset", samples: []Sample{from("a", 200*ms), from("b", 210*ms)}, servers: 2, want: stepClock, wantOffset: 200 * ms, confirmed: true},
		{name: "first sync slews a tiny one", samples: []Sample{from("a", 5*ms), from("b", 6*ms)}, servers: 2, want: slewClock, wantOffset: 5 * ms, confirmed: true},
		{name: "before the floor", samples: []Sample{from("a", -2*time.Hour), from("b", -2*time.Hour)}, servers: 2, wantRefused: "before the last known time 2026-12-01T11:00:00Z"},
		{name: "just inside the bound", samples: []Sample{from("a", toLimit-time.Hour), from("b", toLimit-time.Hour)}, servers: 2, want: stepClock, wantOffset: toLimit - time.Hour, confirmed: true},
		{name: "past the bound", samples: []Sample{from("a", toLimit+time.Hour), from("b", toLimit+time.Hour)}, servers: 2, wantRefused: "past 2036-05-29T12:00:00Z, 10 years after the image was built"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := decide(round{samples: tt.samples, servers: tt.servers, synced: tt.synced, now: at, floor: floor, limit: limit})
			if d.act != tt.want || d.offset != tt.wantOffset || d.confirmed != tt.confirmed || len(d.outliers) != tt.outliers {
				t.Errorf("decide = %+v; want action %d offset %v confirmed %v, %d outliers", d, tt.want, tt.wantOffset, tt.confirmed, tt.outliers)
			}
			if (d.refused == "") != (tt.wantRefused == "") || !strings.Contains(d.refused, tt.wantRefused) {
				t.Errorf("refused = %q, want %q", d.refused, tt.wantRefused)
			}
		})
	}
}

func TestStepLimit(t *testing.T) {
	build := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name         string
		build, floor time.Time
		want         time.Time
	}{
		{"10 years after the build", build, build.AddDate(1, 0, 0), build.Add(maxAhead)},
		{"no build time: after the floor", time.Time{}, build, build.Add(maxAhead)},
		{"floor past it: the floor", build, build.AddDate(11, 0, 0), build.AddDate(11, 0, 0)},
		{"nothing known: none", time.Time{}, time.Time{}, time.Time{}},
	} {
		if got := stepLimit(tt.build, tt.floor); !got.Equal(tt.want) {
			t.Errorf("%s: stepLimit = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// FuzzDecide: whatever the network sends, a step is confirmed, has the
// agreement it needs, and lands between the floor and the bound.
func FuzzDecide(f *testing.F) {
	f.Add([]byte{}, uint8(1), false)
	f.Add(binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, uint64(time.Hour)), uint64(time.Hour)), uint8(2), false)
	f.Fuzz(func(t *testing.T, b []byte, servers uint8, synced bool) {
		at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
		floor := at.Add(-time.Hour)
		limit := stepLimit(at.AddDate(0, -6, 0), floor)
		var samples []Sample
		for i := 0; i+9 <= len(b) && len(samples) < 8; i += 9 {
			// One byte picks the server (of 4), eight the offset; the
			// delay is the offset's low bits.
			off := time.Duration(binary.BigEndian.Uint64(b[i+1:]))
			addr := fmt.Sprintf("10.0.0.%d:123", b[i]%4)
			samples = append(samples, Sample{Server: addr, Name: addr, Offset: off, Delay: time.Duration(uint64(off) % uint64(3*time.Second))})
		}
		n := int(servers%5) + 1
		d := decide(round{samples: samples, servers: n, synced: synced, now: at, floor: floor, limit: limit})
		if d.refused != "" && d.act != leave {
			t.Fatalf("refused %q but acts %d", d.refused, d.act)
		}
		switch d.act {
		case slewClock:
			if d.offset > stepThreshold || d.offset < -stepThreshold {
				t.Fatalf("slews %v", d.offset)
			}
		case stepClock:
			to := at.Add(d.offset)
			if !d.confirmed || to.Before(floor) || to.After(limit) {
				t.Fatalf("steps to %v unconfirmed or out of bounds: %+v", to, d)
			}
			agree := map[string]bool{}
			for _, s := range samples {
				if s.Delay <= maxDelay && float64(s.Offset)-float64(d.offset) <= float64(agreeWithin) && float64(d.offset)-float64(s.Offset) <= float64(agreeWithin) {
					agree[s.Server+map[bool]string{true: fmt.Sprint(len(agree))}[n == 1]] = true
				}
			}
			if need := map[bool]int{true: samplesOneServer, false: 2}[n == 1]; len(agree) < need {
				t.Fatalf("steps %v with %d agreeing, want %d: %+v", d.offset, len(agree), need, samples)
			}
		}
	})
}
