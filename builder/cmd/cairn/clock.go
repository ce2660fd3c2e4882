package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/cairn-edge/cairn/agent/api"
)

// nodeClock is cairn node clock [set]: it shows the node's time against
// this workstation's and, with set, first sets the node's clock to the
// workstation's, ahead by half a measured round trip so that it is right
// when the request arrives.
func nodeClock(ctx context.Context, c *api.Client, set, asJSON bool, stdout io.Writer) error {
	before := time.Now()
	st, err := c.Clock(ctx)
	after := time.Now()
	if err != nil {
		return err
	}
	if set {
		was, rtt := st.Time.Sub(midpoint(before, after)), after.Sub(before)
		before = time.Now()
		st, err = c.SetClock(ctx, before.Add(rtt/2))
		after = time.Now()
		if err != nil {
			return err
		}
		if !asJSON {
			fmt.Fprintf(stdout, "node clock set to this workstation's time (it was %s)\n\n", difference(was))
		}
	}
	if asJSON {
		return printJSON(stdout, st)
	}
	printClock(stdout, st, before, after)
	return nil
}

// midpoint is the workstation's time when the node most likely read its
// clock: halfway through the request.
func midpoint(before, after time.Time) time.Time { return before.Add(after.Sub(before) / 2) }

// difference says how far the node is from the workstation.
func difference(d time.Duration) string {
	switch {
	case d >= time.Millisecond:
		return d.Round(time.Millisecond).String() + " ahead"
	case d <= -time.Millisecond:
		return (-d).Round(time.Millisecond).String() + " behind"
	}
	return "in step"
}

// printClock prints the node's clock read between before and after.
func printClock(w io.Writer, st *api.ClockStatus, before, after time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	mid := midpoint(before, after)
	fmt.Fprintf(tw, "node time\t%s\n", st.Time.UTC().Format(time.RFC3339Nano))
	fmt.Fprintf(tw, "workstation time\t%s\n", mid.UTC().Format(time.RFC3339Nano))
	fmt.Fprintf(tw, "difference\tnode %s (±%s, half the round trip)\n", difference(st.Time.Sub(mid)), (after.Sub(before) / 2).Round(time.Microsecond))
	sync := "not confirmed by NTP"
	switch {
	case st.Synced:
		sync = fmt.Sprintf("confirmed by NTP server %s at %s (offset %s)", st.Server, st.LastSync.UTC().Format(time.RFC3339), st.Offset)
	case st.LastError != "":
		sync += ": " + st.LastError
	}
	fmt.Fprintf(tw, "sync\t%s\n", sync)
	trust := "not trusted: not saved as the floor (cairn node clock set fixes it)"
	if st.Trusted {
		trust = "trusted: saved as the floor"
	}
	source := map[string]string{"ntp": "NTP", "admin": "set by an administrator at " + st.AdminSet.UTC().Format(time.RFC3339), "floor": "the floor, set forward at boot", "rtc": "the real-time clock"}[st.Source]
	if source == "" {
		source = st.Source
	}
	fmt.Fprintf(tw, "source\t%s; %s\n", source, trust)
	if !st.Floor.IsZero() {
		fmt.Fprintf(tw, "floor\t%s (no NTP step goes before it)\n", st.Floor.UTC().Format(time.RFC3339))
	}
	if r := st.Refused; r != nil {
		fmt.Fprintf(tw, "refused step\t%s: %s\n", r.At.UTC().Format(time.RFC3339), r.Reason)
	}
	tw.Flush()
}
