package main

import (
	"github.com/cairn-edge/cairn/agent/console"
	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/agent/power"
)

// rebootArgFile is where the agent leaves the next reboot's argument (a
// seam for tests).
var rebootArgFile = contract.RebootArgFile

// shutdownOptions are how stage 2 stops the box after the host services.
// The FAT partitions the agent mounted go first (FAT keeps a dirty bit
// until it is unmounted, and the next mount would warn of a volume "not
// properly unmounted"): the ESP, or the Raspberry Pi's CAIRN-AUTO there
// and its two boot partitions; then /var. A reboot carries the argument
// the agent handed over (power.ReadRebootArg: the Pi's tryboot); an
// unreadable one is dropped, and the firmware boots its default.
func shutdownOptions(action power.Action) power.Options {
	o := power.Options{Console: console.Out, Unmount: []string{
		contract.ESPMount, contract.SlotA.RPiBootMount(), contract.SlotB.RPiBootMount(), contract.DataMount,
	}}
	if action != power.Reboot {
		return o
	}
	arg, err := power.ReadRebootArg(rebootArgFile)
	if err != nil {
		say("warning: %v; rebooting without it", err)
	}
	if arg != "" {
		log.Info("rebooting with an argument for the firmware", "arg", arg)
	}
	o.RebootArg = arg
	return o
}
