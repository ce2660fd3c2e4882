package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/agent/api"
)

// cliUpgrades plays an upgrade: each Progress call is the next step.
type cliUpgrades struct {
	mu     sync.Mutex
	steps  []api.Upgrade
	refuse error
}

func (u *cliUpgrades) Start(_ context.Context, req api.UpgradeRequest) (api.Upgrade, error) {
	if u.refuse != nil {
		return api.Upgrade{}, u.refuse
	}
	return u.steps[0], nil
}

func (u *cliUpgrades) Progress() api.Upgrade {
	u.mu.Lock()
	defer u.mu.Unlock()
	s := u.steps[0]
	if len(u.steps) > 1 {
		u.steps = u.steps[1:]
	}
	return s
}

func TestNodeUpgrade(t *testing.T) {
	old := upgradePoll
	upgradePoll = time.Millisecond
	t.Cleanup(func() { upgradePoll = old })
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	at := func(phase string, done int64, reason string) api.Upgrade {
		return api.Upgrade{Phase: phase, Running: true, Ref: "reg/edge:1.1.0", Version: "1.1.0", Slot: "b", FromVersion: "1.0.0", FromSlot: "a",
			DoneBytes: done, TotalBytes: 30 << 20, RateBytes: 2 << 20, ETASeconds: 5, Started: start, Reason: reason}
	}
	for _, tt := range []struct {
		name    string
		u       *cliUpgrades
		want    []string
		wantErr string
	}{
		{"committed", &cliUpgrades{steps: []api.Upgrade{at("boot files", 0, ""), at("downloading", 10<<20, ""), at("armed", 0, ""), at("trial", 0, ""), at("committed", 0, "")}},
			[]string{"accepted: version 1.1.0 into slot b", "downloading [########----------------]  33% 10 MiB/30 MiB 2 MiB/s ETA 5s", "armed: the node reboots into slot b", "committed: slot b runs version 1.1.0 (from 1.0.0"}, ""},
		{"rolled back", &cliUpgrades{steps: []api.Upgrade{at("armed", 0, ""), at("rolled back", 0, "health gate failed after 10m0s: services failed: hello exited")}},
			nil, "rolled back to slot a (version 1.0.0): health gate failed after 10m0s: services failed: hello exited"},
		{"refused", &cliUpgrades{refuse: fmt.Errorf("%w: reg/edge:1.1.0 is for board rpi4", api.ErrUpgradeRefused)},
			nil, "node answered 422 Unprocessable Entity: upgrade refused: reg/edge:1.1.0 is for board rpi4"},
		{"busy", &cliUpgrades{refuse: fmt.Errorf("%w (reg/edge:1.1.0, downloading)", api.ErrUpgradeBusy)},
			nil, "node answered 409 Conflict: an upgrade is already running"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			config, _ := nodeFixture(t, t.TempDir(), api.WithUpgrades(tt.u))
			var out strings.Builder
			err := run(context.Background(), []string{"node", "--config", config, "upgrade", "reg/edge:1.1.0"}, &out, &out)
			t.Logf("output:\n%s", out.String())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q", w)
				}
			}
		})
	}
}
