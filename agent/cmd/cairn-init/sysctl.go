package main

import (
	"strings"

	"github.com/cairn-edge/cairn/agent/sysctl"
)

// Seams for tests: the slot's settings file and the kernel's settings.
var (
	sysctlConf = sysctl.Path
	procSys    = sysctl.ProcSys
)

// applySysctl applies the image's kernel settings (the spec's sysctl
// section). It runs once the slot's modules are loaded, so the settings
// they bring exist, and before any service starts; by then the kernel's
// own late adjustments are done too (khugepaged raises vm.min_free_kbytes
// when it starts, if transparent huge pages are on), so a value set here
// stays. A setting that fails is a console warning, not a failed boot.
func applySysctl() {
	settings, err := sysctl.Load(sysctlConf)
	if err != nil {
		say("warning: sysctl: %v; no kernel settings applied", err)
		return
	}
	if len(settings) == 0 {
		return
	}
	if err := sysctl.Apply(procSys, settings); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			say("warning: %s", line)
		}
	}
	for _, s := range settings {
		if v, err := sysctl.Read(procSys, s.Key); err == nil {
			log.Info("sysctl", "key", s.Key, "value", v)
		}
	}
}
