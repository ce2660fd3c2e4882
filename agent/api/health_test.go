package api

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent/health"
)

// TestHealthSection: status carries the health model's snapshot and
// /metrics its states, read from the same model.
func TestHealthSection(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	st, err := e.client.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h := st.Health
	if h == nil {
		t.Fatal("status has no health section")
	}
	if h.State != health.Degraded || h.Reason != "disk: CAIRN-DATA is nearly full: 20 MiB free of 4096 MiB" || len(h.Parts) != 2 || h.Parts[0].Name != "services" {
		t.Errorf("health = %+v", h)
	}
	_, body := e.raw(t, "GET", "/v1/status")
	for _, want := range []string{`"health":{"state":"degraded","reason":"disk: CAIRN-DATA is nearly full`, `"parts":[{"name":"services","state":"ok"`, `"changes":[{"at":`} {
		if !strings.Contains(body, want) {
			t.Errorf("status JSON lacks %s:\n%s", want, body)
		}
	}

	m, err := e.client.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkExposition(t, string(m))
	for _, want := range []string{
		"cairn_node_healthy 0",
		`cairn_node_health{state="degraded"} 1`,
		`cairn_node_health{state="ok"} 0`,
		`cairn_health{part="services",state="ok"} 1`,
		`cairn_health{part="disk",state="degraded"} 1`,
		`cairn_health{part="disk",state="ok"} 0`,
	} {
		if !strings.Contains(string(m), want+"\n") {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestHealthMetrics renders the health families for model states.
func TestHealthMetrics(t *testing.T) {
	for _, tt := range []struct {
		name   string
		health *health.Snapshot
		want   []string
		absent []string
	}{
		{"no health model", nil, nil, []string{"cairn_node_health", "cairn_health"}},
		{"healthy, no parts", &health.Snapshot{State: health.OK}, []string{"cairn_node_healthy 1", `cairn_node_health{state="ok"} 1`, `cairn_node_health{state="failed"} 0`}, []string{"cairn_health{"}},
		{"a failed part", &health.Snapshot{State: health.Failed, Parts: []health.PartStatus{{Name: "kubernetes", State: health.Failed}, {Name: "clock", State: health.Starting}}}, []string{
			"cairn_node_healthy 0",
			`cairn_health{part="kubernetes",state="failed"} 1`,
			`cairn_health{part="kubernetes",state="ok"} 0`,
			`cairn_health{part="clock",state="starting"} 1`,
		}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			st := &Status{NodeStatus: testNodeStatus, Health: tt.health}
			if err := writeMetrics(&b, st, newRequestMetrics(), &connCounters{}); err != nil {
				t.Fatal(err)
			}
			checkExposition(t, b.String())
			for _, w := range tt.want {
				if !strings.Contains(b.String(), w+"\n") {
					t.Errorf("metrics lack %s", w)
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(b.String(), a) {
					t.Errorf("metrics have %s", a)
				}
			}
		})
	}
}
