package qemu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrKilled is the exit error of a VM ended by Kill or by the end of the
// context given to Start.
var ErrKilled = errors.New("QEMU was killed")

// tailLines is how much console errors quote.
const tailLines = 30

// VM is a running (or exited) QEMU.
type VM struct {
	arch      Arch
	accel     string
	args      []string // QEMU's command line, binary first
	start     time.Time
	console   *console
	stderr    LockedBuffer
	logFile   *os.File
	qmpPath   string
	hostPorts map[int]int // guest port → host port

	cmd     *exec.Cmd
	done    chan struct{} // closed when QEMU has exited and output is drained
	exitErr error         // valid once done is closed
	ran     time.Duration // QEMU's run time, valid once done is closed
	killed  atomic.Bool

	expectMu sync.Mutex
	next     int // index of the first console line the next Expect looks at
}

// Match is a console line found by Expect.
type Match struct {
	// Line is the whole line, without its line ending and terminal escapes.
	Line string
	// Groups are the pattern's match and its submatches, as from
	// regexp.FindStringSubmatch: Groups[0] is the matched text.
	Groups []string
	// At is when the line arrived, as time since QEMU started.
	At time.Duration
}

// Start starts QEMU with the options and returns once the process runs; use
// Expect to wait for the guest. QEMU is killed when ctx ends. Call Kill (or
// use StartT) when done, so no QEMU outlives the test.
func Start(ctx context.Context, opts ...Option) (*VM, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if !cfg.uefiSet {
		cfg.uefi = len(cfg.disks) > 0 && cfg.kernel == ""
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	bin, err := qemuBinary(cfg.arch)
	if err != nil {
		return nil, err
	}
	accel, err := accelFor(cfg.arch)
	if err != nil {
		return nil, err
	}
	// A short private directory: unix socket paths are limited to 108 bytes,
	// which t.TempDir's long names easily exceed.
	dir, err := os.MkdirTemp("", "cairn-qemu-")
	if err != nil {
		return nil, fmt.Errorf("creating QEMU's runtime directory: %w", err)
	}
	v := &VM{
		arch:      cfg.arch,
		accel:     accel,
		qmpPath:   filepath.Join(dir, "qmp.sock"),
		hostPorts: map[int]int{},
		done:      make(chan struct{}),
	}
	args, err := v.buildArgs(&cfg, dir)
	if err == nil && cfg.consoleLog != "" {
		v.logFile, err = os.Create(cfg.consoleLog)
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	v.args = append([]string{bin}, args...)

	v.cmd = exec.Command(bin, args...)
	v.cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,            // so Kill reaches any helper QEMU forks
		Pdeathsig: syscall.SIGKILL, // so QEMU dies with the test binary
	}
	v.cmd.Stderr = &v.stderr
	v.cmd.WaitDelay = 5 * time.Second
	v.start = time.Now()
	var tees []io.Writer
	if v.logFile != nil {
		tees = append(tees, v.logFile)
	}
	if cfg.stdout != nil {
		tees = append(tees, cfg.stdout)
	}
	switch len(tees) {
	case 0:
		v.console = newConsole(v.start, nil)
	case 1:
		v.console = newConsole(v.start, tees[0])
	default:
		v.console = newConsole(v.start, io.MultiWriter(tees...))
	}
	v.cmd.Stdin = cfg.stdin
	v.cmd.Stdout = v.console
	if err := v.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		if v.logFile != nil {
			v.logFile.Close()
		}
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}

	go func() {
		err := v.cmd.Wait()
		v.ran = time.Since(v.start)
		if v.killed.Load() {
			err = ErrKilled
		} else if err != nil {
			err = fmt.Errorf("QEMU exited: %w%s", err, v.stderrSuffix())
		}
		v.exitErr = err
		v.console.close()
		if v.logFile != nil {
			v.logFile.Close()
		}
		os.RemoveAll(dir)
		close(v.done)
	}()
	go func() {
		select {
		case <-ctx.Done():
			v.Kill()
		case <-v.done:
		}
	}()
	return v, nil
}

func (c *config) check() error {
	if c.memMiB <= 0 || c.cpus <= 0 {
		return fmt.Errorf("qemu: memory (%d MiB) and CPUs (%d) must be positive", c.memMiB, c.cpus)
	}
	if len(c.disks) == 0 && c.kernel == "" && !c.uefi && c.tap == "" {
		return errors.New("qemu: nothing to boot: give WithDisk, WithKernel, WithUEFI or WithNetBoot")
	}
	if c.varsFile != "" && !c.uefi {
		return errors.New("qemu: WithVarsFile needs UEFI, but WithoutUEFI was given")
	}
	for _, f := range append(append([]string{}, c.disks...), c.kernel, c.initrd, c.bios, c.raspiDTB) {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("qemu: %w", err)
		}
	}
	return nil
}

// buildArgs turns the configuration into QEMU's arguments. Runtime files
// (variable store copy, padded firmware) go into dir.
func (v *VM) buildArgs(c *config, dir string) ([]string, error) {
	kvm := v.accel == "kvm"
	var args []string
	raspi := c.raspiDTB != ""
	switch {
	case raspi:
		args = append(args, "-machine", "raspi3b", "-accel", "tcg", "-dtb", c.raspiDTB)
	case c.arch == AMD64:
		args = append(args, "-machine", "q35", "-accel", v.accel)
		if kvm {
			args = append(args, "-cpu", "host")
		}
	case c.arch == ARM64:
		if kvm {
			// KVM can only offer the host's interrupt controller.
			args = append(args, "-machine", "virt,gic-version=host", "-accel", "kvm", "-cpu", "host")
		} else {
			// cortex-a57, not max: under TCG max emulates pointer
			// authentication in software, and Debian's kernel boots
			// 5-6 times slower (7.4 s against 1.3 s to its root mount).
			args = append(args, "-machine", "virt", "-accel", "tcg", "-cpu", "cortex-a57")
		}
	}
	args = append(args,
		"-m", strconv.Itoa(c.memMiB),
		"-smp", strconv.Itoa(c.cpus),
		// No default NIC, VGA, CD-ROM or monitor: only what we add.
		"-nodefaults",
		"-display", "none",
	)
	if raspi {
		args = append(args, "-serial", "null")
	}
	args = append(args,
		"-serial", "stdio",
		"-qmp", "unix:"+qemuEscape(v.qmpPath)+",server=on,wait=off",
	)
	if !c.guestReboot {
		// A guest reboot, a panic's reboot (panic=N) and a watchdog
		// reset alike end QEMU.
		args = append(args, "-no-reboot")
	}
	if c.watchdog {
		// -action needs QEMU 6.0 (-watchdog-action before); reset is
		// also its default, said here so the tests do not hang on it.
		args = append(args, "-device", "i6300esb", "-action", "watchdog=reset")
	}
	if c.uefi {
		fw, err := findFirmware(c.arch)
		if err != nil {
			return nil, err
		}
		vars := c.varsFile
		if vars == "" {
			vars = filepath.Join(dir, "vars.fd")
		}
		pflash, err := pflashArgs(c.arch, fw, vars, dir)
		if err != nil {
			return nil, err
		}
		args = append(args, pflash...)
	}
	if c.bios != "" {
		args = append(args, "-bios", c.bios)
	}
	if c.kernel != "" {
		args = append(args, "-kernel", c.kernel)
		if c.initrd != "" {
			args = append(args, "-initrd", c.initrd)
		}
		if c.cmdline != "" {
			args = append(args, "-append", c.cmdline)
		}
	}
	for i, d := range c.disks {
		if raspi {
			args = append(args, "-drive", "if=sd,format=raw,file="+qemuEscape(d))
			continue
		}
		id := fmt.Sprintf("disk%d", i)
		args = append(args,
			"-drive", "if=none,format=raw,id="+id+",file="+qemuEscape(d),
			"-device", "virtio-blk-pci,drive="+id,
		)
	}
	if c.network {
		netdev := "user,id=net0"
		if c.isolated {
			netdev += ",restrict=on"
		}
		for _, f := range c.forwards {
			host := f.host
			if host == 0 {
				p, err := freePort()
				if err != nil {
					return nil, err
				}
				host = p
			}
			v.hostPorts[f.guest] = host
			netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-%s:%d", host, f.guestAddr, f.guest)
		}
		for _, f := range c.guestFwds {
			netdev += ",guestfwd=" + f
		}
		// romfile= drops the NIC's iPXE option ROM: no network boot
		// attempts, and a faster firmware start.
		nic := "virtio-net-pci,netdev=net0,romfile="
		if raspi {
			nic = "usb-net,netdev=net0"
		}
		args = append(args, "-netdev", netdev, "-device", nic)
	}
	if c.tap != "" {
		args = append(args, "-netdev", "tap,id=net1,script=no,downscript=no,ifname="+qemuEscape(c.tap),
			"-device", "virtio-net-pci,netdev=net1,mac="+c.mac, "-boot", "n")
	}
	return append(args, c.extraArgs...), nil
}

// commandLine returns QEMU's command line, quoted for a shell, to rerun by
// hand.
func (v *VM) commandLine() string {
	quoted := make([]string, len(v.args))
	for i, a := range v.args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`*?[]{}()<>|&;#~") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		quoted[i] = a
	}
	return strings.Join(quoted, " ")
}

// qemuEscape escapes a value inside a QEMU key=value,... option string,
// where a comma is written as two.
func qemuEscape(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// Arch returns the guest's architecture.
func (v *VM) Arch() Arch { return v.arch }

// Accel returns QEMU's accelerator: "kvm" or "tcg".
func (v *VM) Accel() string { return v.accel }

// Since returns the time since QEMU started.
func (v *VM) Since() time.Duration { return time.Since(v.start) }

// Console returns everything the guest printed on the serial console so far,
// as it came (line endings and escape sequences included).
func (v *VM) Console() string { return v.console.String() }

// HostPort returns the host port forwarded to guestPort (see
// WithPortForward), or 0 if there is none.
func (v *VM) HostPort(guestPort int) int { return v.hostPorts[guestPort] }

// Expect waits up to timeout for a console line matching the regular
// expression pattern (a plain string matches itself, unless it holds
// metacharacters such as . or (), which then match as regexp syntax).
// Like expect(1) it looks only after the line of the previous Expect's match,
// so a sequence of Expects asserts an order. Lines are matched once complete,
// without their line ending and terminal escape sequences.
//
// If the time runs out or QEMU exits first, the error quotes the last
// console lines and says how long it waited.
func (v *VM) Expect(timeout time.Duration, pattern string) (*Match, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return v.ExpectContext(ctx, pattern)
}

// ExpectContext is Expect, waiting until ctx ends.
func (v *VM) ExpectContext(ctx context.Context, pattern string) (*Match, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("qemu: Expect pattern: %w", err)
	}
	v.expectMu.Lock()
	defer v.expectMu.Unlock()
	begin := time.Now()
	c := v.console
	for scanned := v.next; ; {
		c.mu.Lock()
		for ; scanned < len(c.lines); scanned++ {
			l := c.lines[scanned]
			if g := re.FindStringSubmatch(l.text); g != nil {
				c.mu.Unlock()
				v.next = scanned + 1
				return &Match{Line: l.text, Groups: g, At: l.at}, nil
			}
		}
		changed, closed := c.changed, c.closed
		c.mu.Unlock()
		if closed {
			<-v.done
			why := "QEMU exited (guest powered off or rebooted)"
			if v.exitErr != nil {
				why = v.exitErr.Error()
			}
			return nil, v.expectError(pattern, begin, why+" first")
		}
		select {
		case <-changed:
		case <-ctx.Done():
			why := fmt.Sprintf("QEMU started %v ago", v.Since().Round(10*time.Millisecond))
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				why = fmt.Sprintf("%v; %s", context.Cause(ctx), why)
			}
			return nil, v.expectError(pattern, begin, why)
		}
	}
}

// expectError says what Expect looked for, where and for how long, and
// quotes the console's last lines.
func (v *VM) expectError(pattern string, begin time.Time, why string) error {
	var where string
	if v.next > 0 {
		v.console.mu.Lock()
		prev := v.console.lines[v.next-1]
		v.console.mu.Unlock()
		where = fmt.Sprintf("; looked only after the previous match at %.2fs (%q)", prev.at.Seconds(), prev.text)
	}
	return fmt.Errorf("qemu: no console line matching %q after waiting %v (%s)%s; last console lines:\n%s",
		pattern, time.Since(begin).Round(100*time.Millisecond), why, where, v.console.tail(tailLines))
}

// Wait waits up to timeout for QEMU to exit. It returns nil when QEMU exited
// normally: the guest powered off (or rebooted, without WithGuestReboot).
func (v *VM) Wait(timeout time.Duration) error {
	select {
	case <-v.done:
		return v.exitErr
	case <-time.After(timeout):
		return fmt.Errorf("qemu: still running after waiting %v (QEMU started %v ago); last console lines:\n%s",
			timeout, v.Since().Round(10*time.Millisecond), v.console.tail(tailLines))
	}
}

// Exited reports whether QEMU has exited.
func (v *VM) Exited() bool {
	select {
	case <-v.done:
		return true
	default:
		return false
	}
}

// Kill cuts the power: it kills QEMU at once (SIGKILL, whatever the guest
// has not written to its disks is lost) and returns once it is gone. It does
// nothing if QEMU already exited.
func (v *VM) Kill() error {
	if v.Exited() {
		return nil
	}
	v.killed.Store(true)
	// The negative pid addresses QEMU's whole process group.
	if err := syscall.Kill(-v.cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("qemu: killing QEMU (pid %d): %w", v.cmd.Process.Pid, err)
	}
	<-v.done
	return nil
}

// PowerDown presses the ACPI power button (QMP system_powerdown) and waits up
// to timeout for the guest to power off and QEMU to exit. A guest that does
// not handle the button keeps running; PowerDown then returns an error and
// leaves the VM to the caller (Kill).
func (v *VM) PowerDown(timeout time.Duration) error {
	if v.Exited() {
		return v.exitErr
	}
	deadline := time.Now().Add(timeout)
	if _, err := v.QMP("system_powerdown", nil); err != nil {
		if v.Exited() { // went down on its own meanwhile
			return v.exitErr
		}
		return err
	}
	if err := v.Wait(time.Until(deadline)); err != nil {
		if !v.Exited() {
			return fmt.Errorf("qemu: guest did not power off within %v of system_powerdown (does it handle the ACPI power button?): %w", timeout, err)
		}
		return err
	}
	return nil
}

// QMP runs a QEMU Machine Protocol command (such as "query-status", or
// "set_link" with {"name": "net0", "up": false} to cut the network) and
// returns its result. args is encoded as JSON; nil for none.
func (v *VM) QMP(command string, args any) (json.RawMessage, error) {
	if v.Exited() {
		return nil, fmt.Errorf("qemu: QMP %s: QEMU has exited", command)
	}
	res, err := qmp(v.qmpPath, command, args)
	if err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	return res, nil
}

// stderrSuffix quotes what QEMU said on stderr, for exit errors.
func (v *VM) stderrSuffix() string {
	s := strings.TrimSpace(v.stderr.String())
	if s == "" {
		return ""
	}
	return "; QEMU said: " + s
}

// LockedBuffer is a bytes.Buffer safe for concurrent use: the output of a
// process a test starts and reads while it runs.
type LockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
