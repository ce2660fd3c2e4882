package picard

import (
	"bytes"
	"testing"

	"github.com/u-root/u-root/pkg/dt"
)

// TestBootRecord checks the firmware's record in the device tree as the
// node reads it: /chosen/bootloader's tryboot and partition cells, with or
// without a /chosen before.
func TestBootRecord(t *testing.T) {
	for _, tt := range []struct {
		name      string
		chosen    bool
		tryboot   bool
		partition uint32
	}{
		{"a tryboot of partition 3", true, true, 3},
		{"a plain boot of partition 2", true, false, 2},
		{"no /chosen before", false, true, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := dt.NewNode("", dt.WithProperty(dt.PropertyString("model", "test")))
			if tt.chosen {
				root.Children = append(root.Children, dt.NewNode("chosen", dt.WithProperty(dt.PropertyString("bootargs", "x"))))
			}
			var in bytes.Buffer
			if _, err := (&dt.FDT{Header: dt.Header{Magic: dt.Magic, Version: 17, LastCompVersion: 16}, RootNode: root}).Write(&in); err != nil {
				t.Fatal(err)
			}
			out, err := BootRecord(in.Bytes(), tt.tryboot, tt.partition)
			if err != nil {
				t.Fatal(err)
			}
			fdt, err := dt.ReadFDT(bytes.NewReader(out))
			if err != nil {
				t.Fatal(err)
			}
			chosen, ok := fdt.RootNode.LookupChildByName("chosen")
			if !ok {
				t.Fatal("no /chosen")
			}
			bl, ok := chosen.LookupChildByName("bootloader")
			if !ok {
				t.Fatal("no /chosen/bootloader")
			}
			want := map[string]uint32{"tryboot": 0, "partition": tt.partition}
			if tt.tryboot {
				want["tryboot"] = 1
			}
			for name, v := range want {
				p, ok := bl.LookProperty(name)
				if !ok {
					t.Fatalf("no %s", name)
				}
				if got, err := p.AsU32(); err != nil || got != v {
					t.Errorf("%s = %d, %v; want %d", name, got, err, v)
				}
			}
		})
	}
}

// TestRebooted checks that only a restart with "0 tryboot" sets the flag.
func TestRebooted(t *testing.T) {
	for console, want := range map[string]bool{
		"[   12.3] reboot: Restarting system with command '0 tryboot'\n": true,
		"[   12.3] reboot: Restarting system\n":                          false,
		"[   12.3] reboot: Restarting system with command 'other'\n":     false,
		"Kernel panic - not syncing\nRebooting in 10 seconds..\n":        false,
	} {
		c := Card{Tryboot: !want}
		c.Rebooted(console)
		if c.Tryboot != want {
			t.Errorf("Rebooted(%q): flag %v, want %v", console, c.Tryboot, want)
		}
	}
}
