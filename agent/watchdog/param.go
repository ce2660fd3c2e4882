package watchdog

import (
	"fmt"
	"strconv"
	"time"
)

// Param is the kernel command line parameter that sets the boot timeout
// in seconds: cairn.watchdog=300 for a slow box, cairn.watchdog=0 to leave
// the watchdog alone (cairn-init does not arm it, and the agent must not
// open it either: opening starts it).
const Param = "cairn.watchdog"

// BootTimeout is the time cairn-init gives a boot from the initramfs until
// the agent takes the watchdog over. A TCG guest reaches the agent in
// 12–18 s on an idle host and a few times that on a loaded one; real boxes
// in a few seconds, plus the ext4 creation of a first boot.
const BootTimeout = 120 * time.Second

// maxParam bounds cairn.watchdog; drivers allow less (the i6300ESB up to
// 2046 s, Intel's TCO v2 614 s, v1 76 s) and refuse more with EINVAL,
// which leaves their default (cairn-init says so).
const maxParam = 24 * 60 * 60

// Params is what a parsed kernel command line offers
// (agent/boot/cmdline.Cmdline).
type Params interface {
	Get(key string) (string, bool)
}

// TimeoutParam returns the boot timeout the kernel command line asks for:
// BootTimeout without cairn.watchdog=, 0 for off. A value that is not a
// number of seconds is an error, with BootTimeout to go on with.
func TimeoutParam(p Params) (time.Duration, error) {
	v, ok := p.Get(Param)
	if !ok {
		return BootTimeout, nil
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil || n > maxParam {
		return BootTimeout, fmt.Errorf("kernel command line has %s=%q, which is not a number of seconds up to %d (use %s=%d, or %s=0 for no watchdog)",
			Param, truncate(v, 24), maxParam, Param, int(BootTimeout.Seconds()), Param)
	}
	return time.Duration(n) * time.Second, nil
}

// truncate keeps error messages readable when the input is hostile.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
