package power

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/cairn-edge/cairn/agent/atomicfile"
)

// A reboot argument is what reboot(2)'s LINUX_REBOOT_CMD_RESTART2 passes
// to the firmware through the kernel, as the Raspberry Pi's "0 tryboot"
// (contract.RPiTrybootArg), which sets the firmware's one-shot tryboot
// flag. The agent, which arms the trial, is not the process that reboots:
// PID 1 (cairn-init) stops everything in order first. So the agent hands
// the argument over in a file on /run (contract.RebootArgFile, a tmpfs
// gone at the reboot) with SetRebootArg before it asks PID 1 to reboot,
// and PID 1 reads it with ReadRebootArg and passes it in
// Options.RebootArg:
//
//	// the agent
//	err := power.SetRebootArg(contract.RebootArgFile, reboot.Arg) // "" removes it
//	unix.Kill(1, unix.SIGINT)
//	// cairn-init, stopping
//	arg, err := power.ReadRebootArg(contract.RebootArgFile)
//	power.Shutdown(power.Reboot, power.Options{RebootArg: arg, …})
//
// The file holds the argument and a line break.

// MaxRebootArg is the longest argument the kernel passes on: it copies at
// most 255 bytes and a NUL (kernel/reboot.c).
const MaxRebootArg = 255

// CheckRebootArg refuses an argument the kernel would cut or misread:
// empty, longer than MaxRebootArg, or holding a NUL or another control
// character (the firmware reads text).
func CheckRebootArg(arg string) error {
	switch {
	case arg == "":
		return errors.New("reboot argument is empty (a plain reboot has none: remove the file)")
	case len(arg) > MaxRebootArg:
		return fmt.Errorf("reboot argument is %d bytes, more than the %d the kernel passes on", len(arg), MaxRebootArg)
	}
	for _, c := range []byte(arg) {
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("reboot argument %q holds a control character (want text, such as \"0 tryboot\")", arg)
		}
	}
	return nil
}

// restart2Arg is reboot(2)'s fourth argument for arg: its bytes and a NUL.
func restart2Arg(arg string) ([]byte, error) {
	if err := CheckRebootArg(arg); err != nil {
		return nil, err
	}
	return append([]byte(arg), 0), nil
}

// restart2 reboots with LINUX_REBOOT_CMD_RESTART2 and arg. x/sys/unix
// wraps reboot(2) only without an argument (unix.Reboot), so this is the
// raw call: reboot(MAGIC1, MAGIC2, RESTART2, arg). A variable, replaced in
// tests.
var restart2 = func(arg string) error {
	b, err := restart2Arg(arg)
	if err != nil {
		return err
	}
	_, _, errno := unix.Syscall6(unix.SYS_REBOOT, unix.LINUX_REBOOT_MAGIC1, unix.LINUX_REBOOT_MAGIC2,
		unix.LINUX_REBOOT_CMD_RESTART2, uintptr(unsafe.Pointer(&b[0])), 0, 0)
	if errno != 0 {
		return fmt.Errorf("reboot(2) RESTART2 %q: %w", arg, errno)
	}
	return nil
}

// SetRebootArg records arg for PID 1's next reboot in path, replacing it
// atomically; an empty arg removes the file, so the next reboot is a
// plain one.
func SetRebootArg(path, arg string) error {
	if arg == "" {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing the reboot argument %s: %w", path, err)
		}
		return nil
	}
	if err := CheckRebootArg(arg); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(path, []byte(arg+"\n"), 0o644); err != nil {
		return fmt.Errorf("writing the reboot argument %s: %w", path, err)
	}
	return nil
}

// ReadRebootArg reads the argument SetRebootArg left in path: "" when
// there is none (a plain reboot), an error for a file that holds no valid
// argument (PID 1 then reboots plainly: the firmware boots its default).
func ReadRebootArg(path string) (string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading the reboot argument: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxRebootArg+2))
	if err != nil {
		return "", fmt.Errorf("reading the reboot argument %s: %w", path, err)
	}
	arg, ok := strings.CutSuffix(string(b), "\n")
	if !ok {
		return "", fmt.Errorf("%s does not end in a line break: cut short or not written by the agent (power.SetRebootArg)", path)
	}
	if err := CheckRebootArg(arg); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return arg, nil
}
