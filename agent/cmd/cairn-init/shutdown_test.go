package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/agent/power"
)

func TestShutdownOptions(t *testing.T) {
	oldFile, oldSay := rebootArgFile, say
	t.Cleanup(func() { rebootArgFile, say = oldFile, oldSay })
	var said []string
	say = func(format string, args ...any) { said = append(said, fmt.Sprintf(format, args...)) }
	rebootArgFile = filepath.Join(t.TempDir(), "reboot-arg")

	for _, tt := range []struct {
		name    string
		file    string // "" : none
		action  power.Action
		wantArg string
		wantSay string
	}{
		{"plain reboot", "", power.Reboot, "", ""},
		{"tryboot", contract.RPiTrybootArg + "\n", power.Reboot, contract.RPiTrybootArg, ""},
		{"poweroff ignores it", contract.RPiTrybootArg + "\n", power.Poweroff, "", ""},
		{"damaged: dropped", "0 try", power.Reboot, "", "rebooting without it"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			said = nil
			os.Remove(rebootArgFile)
			if tt.file != "" {
				os.WriteFile(rebootArgFile, []byte(tt.file), 0o644)
			}
			o := shutdownOptions(tt.action)
			if o.RebootArg != tt.wantArg {
				t.Errorf("RebootArg = %q, want %q", o.RebootArg, tt.wantArg)
			}
			if got := strings.Join(said, "\n"); tt.wantSay == "" && got != "" || !strings.Contains(got, tt.wantSay) {
				t.Errorf("said %q, want %q", got, tt.wantSay)
			}
			// The FAT partitions before /var, the Pi's among them.
			want := []string{contract.ESPMount, contract.SlotA.RPiBootMount(), contract.SlotB.RPiBootMount(), contract.DataMount}
			if !slices.Equal(o.Unmount, want) {
				t.Errorf("Unmount = %q, want %q", o.Unmount, want)
			}
		})
	}
}
