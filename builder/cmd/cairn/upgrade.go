package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cairn-edge/cairn/agent/api"
)

// upgradePoll is how often `cairn node upgrade` asks for progress.
var upgradePoll = time.Second

// upgradeNode runs `cairn node upgrade REF`: it asks the node to upgrade,
// shows the progress (phase, bytes, rate, ETA) until the node reboots,
// waits for it through the trial boot, and prints the outcome: committed,
// or rolled back (or failed) with the reason, which is also an error.
func upgradeNode(ctx context.Context, c *api.Client, req api.UpgradeRequest, wait time.Duration, asJSON bool, out io.Writer) error {
	first, err := c.Upgrade(ctx, req)
	if err != nil {
		return err
	}
	p := newProgressPrinter(out, asJSON)
	p.line("upgrade of %s accepted: version %s into slot %s", first.Ref, first.Version, first.Slot)
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	began := time.Now()
	var last *api.Upgrade
	for {
		up, err := c.UpgradeProgress(ctx)
		var apiErr *api.Error
		switch {
		case err == nil:
			if last == nil || up.Phase != last.Phase {
				p.phase(up)
			}
			p.bytes(up)
			last = up
			if ended(up.Phase) {
				p.done()
				return upgradeOutcome(out, up, time.Since(began), asJSON)
			}
		case ctx.Err() != nil:
			return fmt.Errorf("no outcome after %s (last phase %q): the node may still be in its trial; see cairn node status", wait, phaseOf(last))
		case errors.As(err, &apiErr):
			return err
		default:
			// Rebooting: the API is away, and a kept-alive connection to
			// it may be dead; the next poll dials anew.
			c.CloseIdleConnections()
			p.waiting(last)
		}
		select {
		case <-ctx.Done():
		case <-time.After(upgradePoll):
		}
	}
}

func ended(phase string) bool {
	return phase == "committed" || phase == "rolled back" || phase == "failed"
}

func phaseOf(u *api.Upgrade) string {
	if u == nil {
		return ""
	}
	return u.Phase
}

// upgradeOutcome prints how the upgrade ended; anything but a commit is
// an error carrying the node's reason.
func upgradeOutcome(out io.Writer, up *api.Upgrade, took time.Duration, asJSON bool) error {
	if asJSON {
		if err := printJSON(out, up); err != nil {
			return err
		}
	}
	switch up.Phase {
	case "committed":
		if !asJSON {
			fmt.Fprintf(out, "committed: slot %s runs version %s (from %s; %s)\n", up.Slot, up.Version, up.FromVersion, took.Round(time.Second))
		}
		return nil
	case "rolled back":
		return fmt.Errorf("rolled back to slot %s (version %s): %s", up.FromSlot, up.FromVersion, up.Reason)
	}
	return fmt.Errorf("upgrade failed; slot %s still runs version %s: %s", up.FromSlot, up.FromVersion, up.Reason)
}

// progressPrinter shows an upgrade's progress: a line per phase and a
// bar for the byte phases, redrawn in place.
type progressPrinter struct {
	w      io.Writer
	quiet  bool   // --json: only the outcome
	drawn  bool   // a bar is on the current line
	last   string // the bar drawn last
	waited bool
}

func newProgressPrinter(w io.Writer, quiet bool) *progressPrinter {
	return &progressPrinter{w: w, quiet: quiet}
}

func (p *progressPrinter) line(format string, args ...any) {
	if p.quiet {
		return
	}
	p.done()
	fmt.Fprintf(p.w, format+"\n", args...)
}

func (p *progressPrinter) done() {
	if p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}

func (p *progressPrinter) phase(up *api.Upgrade) {
	p.waited = false
	switch up.Phase {
	case "armed":
		p.line("armed: the node reboots into slot %s for a trial boot", up.Slot)
	case "trial":
		p.line("trial: slot %s booted; waiting for its health gate", up.Slot)
	case "gate failed":
		p.line("gate failed: %s", up.Reason)
	default:
		p.line("%s", up.Phase)
	}
}

func (p *progressPrinter) waiting(last *api.Upgrade) {
	if !p.waited {
		p.line("waiting for the node to come back (phase %s)", phaseOf(last))
		p.waited = true
	}
}

// bytes redraws the bar: phase, bytes done of total, rate and ETA.
func (p *progressPrinter) bytes(up *api.Upgrade) {
	if p.quiet || up.TotalBytes == 0 {
		return
	}
	bar := progressBar(up)
	if bar == p.last {
		return // a stall: nothing new to draw
	}
	fmt.Fprintf(p.w, "\r%s", bar)
	p.drawn, p.last = true, bar
}

// progressBar is one line: "downloading [#####-----] 45% 12 MiB/27 MiB 3.1 MiB/s ETA 5s".
func progressBar(up *api.Upgrade) string {
	const width = 24
	frac := float64(up.DoneBytes) / float64(up.TotalBytes)
	frac = min(max(frac, 0), 1)
	n := int(frac * width)
	bar := strings.Repeat("#", n) + strings.Repeat("-", width-n)
	s := fmt.Sprintf("%-11s [%s] %3.0f%% %s/%s", up.Phase, bar, frac*100, bytesIEC(uint64(up.DoneBytes)), bytesIEC(uint64(up.TotalBytes)))
	if up.RateBytes > 0 {
		s += fmt.Sprintf(" %s/s", bytesIEC(uint64(up.RateBytes)))
	}
	if up.ETASeconds > 0 {
		s += fmt.Sprintf(" ETA %s", (time.Duration(up.ETASeconds) * time.Second).Round(time.Second))
	}
	return s + "   "
}

// upgradeLine is the last upgrade attempt in a line, for status.
func upgradeLine(u *api.Upgrade) string {
	line := fmt.Sprintf("%s %s (slot %s", u.Phase, u.Version, u.Slot)
	if u.FromVersion != "" {
		line += ", from " + u.FromVersion
	}
	line += ")"
	if u.Version == "" {
		line = u.Phase + " " + u.Ref
	}
	if u.Reason != "" {
		line += ": " + u.Reason
	}
	return line
}
