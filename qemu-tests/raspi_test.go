package qemutests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/agent/bootloader/tryboot/pifirmware"
	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/qemu-tests/picard"
	"github.com/cairn-edge/cairn/qemu-tests/qemu"
)

// piCard is picard's Card for a test: its boots are the test's VMs.
type piCard struct {
	picard.Card
	t *testing.T
}

// newPiCard copies img and grows it to picard.SDSize.
func newPiCard(t *testing.T, img string) *piCard {
	t.Helper()
	disk := qemu.CopyImage(t, img)
	if err := os.Truncate(disk, picard.SDSize); err != nil {
		t.Fatal(err)
	}
	return &piCard{Card: picard.Card{Disk: disk}, t: t}
}

// start boots the card as the firmware would and returns the VM and what
// the firmware booted.
func (c *piCard) start(opts ...qemu.Option) (*qemu.VM, pifirmware.Booted) {
	c.t.Helper()
	boot, b, err := c.Boot(c.t.TempDir())
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Logf("Pi firmware: partition %d (slot %s), tryboot %v, fell back %v, device tree %s", b.Partition, b.Slot, b.Tryboot, b.FellBack, b.DTBName)
	return qemu.StartT(c.t, append(boot, opts...)...), b
}

// rebooted waits for vm's guest to reboot (QEMU exits) and takes its
// console: a reboot with "0 tryboot" sets the flag.
func (c *piCard) rebooted(vm *qemu.VM) {
	c.t.Helper()
	if err := vm.Wait(bootTimeout); err != nil {
		c.t.Fatalf("the guest did not reboot: %v", err)
	}
	c.Rebooted(vm.Console())
}

// TestRaspberryPi is the life of a Raspberry Pi upgraded over the air,
// its SD card (firmware rpi, tryboot A/B) on QEMU's raspi3b and the
// firmware's part played by the host (piCard): the default slot a boots
// from mmcblk0 to its agent; v2 comes from the registry through the Pi's
// USB network, the agent reboots with "0 tryboot", the firmware boots
// slot b once, whose agent commits it by rewriting autoboot.txt; v3's
// gate fails in its tryboot of slot a, whose agent marks it bad and
// reboots plainly, and the board comes back to the committed b, whose
// agent reports the rollback. One card for the story.
func TestRaspberryPi(t *testing.T) {
	share(t, everyCore) // raspi3b has 4 vCPUs
	r := newUpgradeRig(t)
	r.watchdog = 0 // see testdata/qemu-raspi3b.yaml
	board := filepath.Join(env.Root, "qemu-tests", "testdata", "qemu-raspi3b.yaml")
	img, err := env.Build(r.spec("1.0.0", "", ""), board, filepath.Join(r.dir, "out-1.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	card := newPiCard(t, img.Image)
	r.disk, r.config = card.Disk, img.NodeConfig
	apiPort := freePort(t) // one port for every boot: the client waits across reboots
	boot := func(slot contract.Slot, tryboot bool, lines ...string) {
		t.Helper()
		var b pifirmware.Booted
		r.vm, b = card.start(qemu.WithPortForward(apiPort, api.DefaultPort))
		if b.Slot != slot || b.Partition != int(slot.RPiBootPartition()) || b.Tryboot != tryboot || b.FellBack {
			t.Fatalf("the firmware booted partition %d (slot %s, tryboot %v, fell back %v); want slot %s, tryboot %v", b.Partition, b.Slot, b.Tryboot, b.FellBack, slot, tryboot)
		}
		for _, line := range lines {
			if _, err := r.vm.Expect(bootTimeout, line); err != nil {
				t.Fatal(err)
			}
		}
	}
	// tryboot pushes spec as tag, starts `cairn node upgrade` and waits for
	// the agent's reboot into the trial, which must ask for "0 tryboot";
	// wait waits for the client.
	tryboot := func(spec, tag string) (wait func() (string, error)) {
		t.Helper()
		r.push(spec, board, tag)
		cmd, out := r.upgradeCmd(tag)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		card.rebooted(r.vm)
		if !card.Tryboot {
			t.Fatalf("the agent rebooted without %q", contract.RPiTrybootArg)
		}
		return func() (string, error) { err := cmd.Wait(); return out.String(), err }
	}

	boot(contract.SlotA, false, `Machine model: Raspberry Pi 3`, `mmcblk0: mmc0:`, `cairn: init ok slot=a `, `cairn: agent ready`)
	r.expectRunning("1.0.0", "a")

	r.step("v2 by tryboot, committed", func(t *testing.T) {
		done := tryboot(r.spec("2.0.0", "", ""), "2.0.0")
		boot(contract.SlotB, true, `cairn: init ok slot=b version=2\.0\.0`, `cairn: upgrade trial slot=b version=2\.0\.0`, `cairn: upgrade committed slot=b version=2\.0\.0`)
		if out, err := done(); err != nil {
			t.Fatalf("upgrade to 2.0.0: %v\n%s", err, out)
		}
		r.expectRunning("2.0.0", "b")
	})

	r.step("v3 whose gate fails in its tryboot: back to the committed b", func(t *testing.T) {
		// A check of the gate that nothing answers (the spec's update
		// section continues).
		done := tryboot(r.spec("3.0.0", "", "  checks: [{tcp: \"127.0.0.1:9\"}]\n"), "3.0.0")
		boot(contract.SlotA, true, `cairn: upgrade trial slot=a version=3\.0\.0`, `cairn: upgrade gate failed slot=a reason=health gate failed`)
		card.rebooted(r.vm)
		if card.Tryboot {
			t.Fatalf("the failed trial rebooted with %q", contract.RPiTrybootArg)
		}
		boot(contract.SlotB, false, `cairn: init ok slot=b version=2\.0\.0`, `cairn: rollback to slot=b reason=health gate failed`, `cairn: agent ready`)
		if out, err := done(); err == nil || !strings.Contains(out, "rolled back to slot b") {
			t.Fatalf("upgrade to a release whose gate fails: %v\n%s", err, out)
		}
		r.expectRunning("2.0.0", "b")
	})
}
