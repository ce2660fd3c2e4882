package api

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-edge/cairn/agent/release"
	"github.com/cairn-edge/cairn/agent/sysctl"
)

// LocalNode is the Node of the machine the agent runs on: identity from the
// release file and the boot, resources from /proc, power through PID 1.
type LocalNode struct {
	Release release.Release
	// Slot is the root slot booted, "a" or "b".
	Slot string
	// Power reboots (reboot true) or powers off the machine. Nil means
	// signalling PID 1: SIGINT reboots, SIGTERM powers off (cairn-init's
	// contract), which works from PID 1 itself too.
	Power func(reboot bool) error
}

// Seams for tests.
var (
	procRoot   = "/proc"
	sysRoot    = "/sys"
	sysctlConf = sysctl.Path
	hostname   = os.Hostname
	interfaces = netAddresses
	signalInit = func(sig unix.Signal) error { return unix.Kill(1, sig) }
	// powerDelay lets the API's reply reach the client before the reboot.
	powerDelay = 500 * time.Millisecond
)

// Status reads the node's status.
func (n *LocalNode) Status(ctx context.Context) (NodeStatus, error) {
	st := NodeStatus{
		Image:   n.Release.Name,
		Version: n.Release.Version,
		Board:   n.Release.Board,
		Arch:    n.Release.Arch,
		Slot:    n.Slot,
	}
	var err error
	if st.Hostname, err = hostname(); err != nil {
		return st, err
	}
	if b, err := os.ReadFile(filepath.Join(procRoot, "sys/kernel/osrelease")); err == nil {
		st.Kernel = strings.TrimSpace(string(b))
	}
	if st.UptimeSeconds, err = readUptime(); err != nil {
		return st, err
	}
	if st.Memory, err = readMemory(); err != nil {
		return st, err
	}
	if st.Load, err = readLoad(); err != nil {
		return st, err
	}
	if st.Addresses, err = interfaces(); err != nil {
		return st, fmt.Errorf("network addresses: %w", err)
	}
	if st.Processes, err = readProcesses(); err != nil {
		return st, fmt.Errorf("processes: %w", err)
	}
	st.Sysctl = readSysctl()
	return st, nil
}

// Reboot reboots the machine half a second after returning.
func (n *LocalNode) Reboot(ctx context.Context) error { return n.power(true) }

// Shutdown powers the machine off half a second after returning.
func (n *LocalNode) Shutdown(ctx context.Context) error { return n.power(false) }

func (n *LocalNode) power(reboot bool) error {
	do := n.Power
	if do == nil {
		do = func(reboot bool) error {
			if reboot {
				return signalInit(unix.SIGINT)
			}
			return signalInit(unix.SIGTERM)
		}
	}
	time.AfterFunc(powerDelay, func() { do(reboot) })
	return nil
}

// readUptime reads the first field of /proc/uptime.
func readUptime() (float64, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, "uptime"))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return 0, fmt.Errorf("/proc/uptime: %q has no uptime", b)
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/uptime: %w", err)
	}
	return v, nil
}

// meminfoFields are the /proc/meminfo lines Memory reports.
var meminfoFields = map[string]func(*Memory) *uint64{
	"MemTotal":     func(m *Memory) *uint64 { return &m.TotalBytes },
	"MemAvailable": func(m *Memory) *uint64 { return &m.AvailableBytes },
	"MemFree":      func(m *Memory) *uint64 { return &m.FreeBytes },
	"Slab":         func(m *Memory) *uint64 { return &m.SlabBytes },
	"SUnreclaim":   func(m *Memory) *uint64 { return &m.SlabUnreclaimableBytes },
	"KernelStack":  func(m *Memory) *uint64 { return &m.KernelStackBytes },
	"PageTables":   func(m *Memory) *uint64 { return &m.PageTablesBytes },
	"Percpu":       func(m *Memory) *uint64 { return &m.PercpuBytes },
}

// readMemory reads /proc/meminfo, the modules' sizes and the reserve. Only
// meminfo is required: the rest is left out where the kernel lacks it.
func readMemory() (Memory, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, "meminfo"))
	if err != nil {
		return Memory{}, err
	}
	var m Memory
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		field, ok := meminfoFields[key]
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return Memory{}, fmt.Errorf("/proc/meminfo: %s has no value", key)
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return Memory{}, fmt.Errorf("/proc/meminfo: %s: %w", key, err)
		}
		*field(&m) = kb * 1024
	}
	if m.TotalBytes == 0 {
		return Memory{}, fmt.Errorf("/proc/meminfo has no MemTotal")
	}
	if b, err := os.ReadFile(filepath.Join(procRoot, "sys/vm/min_free_kbytes")); err == nil {
		if kb, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
			m.MinFreeBytes = kb * 1024
		}
	}
	m.ModulesBytes = modulesSize()
	m.TransparentHugepages = thpMode()
	return m, nil
}

// thpMode is the bracketed word of transparent_hugepage/enabled
// ("always madvise [never]"), or "" without THP.
func thpMode() string {
	b, err := os.ReadFile(filepath.Join(sysRoot, "kernel/mm/transparent_hugepage/enabled"))
	if err != nil {
		return ""
	}
	_, rest, ok := strings.Cut(string(b), "[")
	mode, _, ok2 := strings.Cut(rest, "]")
	if !ok || !ok2 {
		return ""
	}
	return mode
}

// readSysctl reads back the settings the image's sysctl.conf names. A
// damaged file was reported on the console at boot; status shows none.
func readSysctl() map[string]string {
	settings, err := sysctl.Load(sysctlConf)
	if err != nil || len(settings) == 0 {
		return nil
	}
	out := map[string]string{}
	for _, s := range settings {
		if v, err := sysctl.Read(filepath.Join(procRoot, "sys"), s.Key); err == nil {
			out[s.Key] = v
		}
	}
	return out
}

// modulesSize adds up the second column of /proc/modules (each module's
// size in bytes); 0 without modules.
func modulesSize() uint64 {
	b, err := os.ReadFile(filepath.Join(procRoot, "modules"))
	if err != nil {
		return 0
	}
	var sum uint64
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			n, _ := strconv.ParseUint(f[1], 10, 64)
			sum += n
		}
	}
	return sum
}

// readLoad reads the three load averages from /proc/loadavg.
func readLoad() (Load, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, "loadavg"))
	if err != nil {
		return Load{}, err
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return Load{}, fmt.Errorf("/proc/loadavg: %q has fewer than 3 fields", b)
	}
	var v [3]float64
	for i := range v {
		if v[i], err = strconv.ParseFloat(f[i], 64); err != nil {
			return Load{}, fmt.Errorf("/proc/loadavg: %w", err)
		}
	}
	return Load{One: v[0], Five: v[1], Fifteen: v[2]}, nil
}

// netAddresses lists the addresses of the interfaces that are up, loopback excepted.
func netAddresses() ([]Address, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	addrs := []Address{}
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		as, err := ifc.Addrs()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ifc.Name, err)
		}
		for _, a := range as {
			addrs = append(addrs, Address{Interface: ifc.Name, Address: a.String()})
		}
	}
	return addrs, nil
}
