// Package watchdog drives the box's hardware watchdog (/dev/watchdog,
// Linux's watchdog API): a timer in the chipset that resets the machine
// unless software pings it in time. Cairn arms it so that a trial boot of
// a new slot that hangs ends in a reset, and boot counting then starts the
// old slot.
//
// Opening the device starts the timer. cairn-init arms it in the
// initramfs and closes it without disarming, so the hardware keeps
// counting across the switch to the slot; the agent opens it again and
// pings it until it knows the boot is good:
//
//	d, err := watchdog.Open(watchdog.Path)
//	if errors.Is(err, fs.ErrNotExist) {
//		return // no watchdog on this box
//	}
//	k := watchdog.Keep(ctx, d) // pings every timeout/3
//	…                          // the health gate passes
//	err = k.Stop(watchdog.Disarm)
//
// Closing without disarming makes the kernel log "watchdog did not stop!":
// that is the intent, not a fault. A driver without the magic close
// (Options lacks MagicClose) stops on every close, and one loaded with
// nowayout=1 never stops: Disarm then returns ErrNoWayOut and the device
// must be pinged for as long as the box runs.
//
// The ioctls sit behind package variables so tests run without a watchdog.
// See the kernel's Documentation/watchdog/watchdog-api.rst.
package watchdog

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Path is the first watchdog of the box (watchdog0); others, if any, are
// /dev/watchdog1, /dev/watchdog2, …
var Path = "/dev/watchdog"

// Flags are the watchdog API's WDIOF_ bits: what a driver can do (Options)
// and why the box last reset (BootStatus).
type Flags uint32

// The flags Cairn looks at.
const (
	// CardReset in BootStatus: the watchdog reset the box last time.
	CardReset Flags = unix.WDIOF_CARDRESET
	// SetTimeout in Options: the timeout can be changed.
	SetTimeout Flags = unix.WDIOF_SETTIMEOUT
	// MagicClose in Options: closing the device stops the timer only
	// after a 'V' was written; without it every close stops it.
	MagicClose Flags = unix.WDIOF_MAGICCLOSE
	// KeepalivePing in Options: WDIOC_KEEPALIVE is supported.
	KeepalivePing Flags = unix.WDIOF_KEEPALIVEPING
)

// ErrNoWayOut is Disarm's error when the driver cannot stop the timer
// (nowayout): the box resets unless the device keeps being pinged.
var ErrNoWayOut = errors.New("the watchdog cannot be stopped (its driver has nowayout set): keep pinging it")

// Syscalls and the sysfs root, replaced in tests.
var (
	// ioctlInt runs an ioctl whose argument is a pointer to a C int,
	// which the kernel may read and write back.
	ioctlInt = func(fd uintptr, req uint, v *int32) error {
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, uintptr(req), uintptr(unsafe.Pointer(v))); errno != 0 {
			return errno
		}
		return nil
	}
	getSupport = func(fd uintptr) (*unix.WatchdogInfo, error) { return unix.IoctlGetWatchdogInfo(int(fd)) }
	keepalive  = func(fd uintptr) error { return unix.IoctlWatchdogKeepalive(int(fd)) }
	// rdev returns the device number of the open file, 0 for no device.
	rdev = func(f *os.File) uint64 {
		var st unix.Stat_t
		if unix.Fstat(int(f.Fd()), &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR {
			return 0
		}
		return st.Rdev
	}
	sysfsRoot = "/sys"
)

// legacyDev is /dev/watchdog's device number (misc 10:130): the kernel's
// watchdog core gives it to watchdog0.
var legacyDev = unix.Mkdev(10, 130)

// Device is an open, and therefore running, watchdog.
type Device struct {
	f        *os.File
	path     string
	identity string
	options  Flags
	timeout  time.Duration
	sysfs    string // its /sys/class/watchdog/watchdogN, "" if unknown
}

// Open opens the watchdog at path, which starts its timer with the
// driver's current timeout. A path that does not exist (no watchdog, or
// its module is not loaded) gives an error matching fs.ErrNotExist; a
// watchdog another process holds open gives EBUSY (only one may).
func Open(path string) (*Device, error) {
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening watchdog: %w", err)
	}
	d := &Device{f: f, path: path}
	if info, err := getSupport(f.Fd()); err == nil {
		d.identity = strings.TrimRight(string(info.Identity[:]), "\x00")
		d.options = Flags(info.Options)
	}
	var t int32
	if ioctlInt(f.Fd(), unix.WDIOC_GETTIMEOUT, &t) == nil && t > 0 {
		d.timeout = time.Duration(t) * time.Second
	}
	if n := rdev(f); n == legacyDev {
		d.sysfs = sysfsRoot + "/class/watchdog/watchdog0"
	} else if n != 0 {
		d.sysfs = fmt.Sprintf("%s/dev/char/%d:%d", sysfsRoot, unix.Major(n), unix.Minor(n))
	}
	return d, nil
}

// Path returns the device's path, as given to Open.
func (d *Device) Path() string { return d.path }

// Identity returns the driver's name for the hardware ("i6300ESB timer",
// "iTCO_wdt"), or "" if it gave none.
func (d *Device) Identity() string { return d.identity }

// Options returns what the driver supports (MagicClose, SetTimeout, …).
func (d *Device) Options() Flags { return d.options }

// Timeout returns the timeout the timer runs with, as the driver last
// reported it; 0 if it did not say.
func (d *Device) Timeout() time.Duration { return d.timeout }

// SetTimeout sets the time without a ping after which the box resets, in
// whole seconds (rounded up), and restarts the count. The driver may pick
// a value near the one asked for: the one it took is returned.
func (d *Device) SetTimeout(timeout time.Duration) (time.Duration, error) {
	secs := (timeout + time.Second - 1) / time.Second
	if secs < 1 || secs > 1<<31-1 {
		return 0, fmt.Errorf("watchdog %s: timeout %v is out of range (use 1 s or more)", d.path, timeout)
	}
	v := int32(secs)
	if err := ioctlInt(d.f.Fd(), unix.WDIOC_SETTIMEOUT, &v); err != nil {
		return 0, fmt.Errorf("watchdog %s (%s): setting the timeout to %ds: %w (the driver's limit may be lower; it keeps %v)", d.path, d.identity, secs, err, d.timeout)
	}
	d.timeout = time.Duration(v) * time.Second
	return d.timeout, nil
}

// Ping restarts the count: WDIOC_KEEPALIVE, or a write for a driver
// without it (any write pings; this one holds no 'V').
func (d *Device) Ping() error {
	var err error
	if d.options&KeepalivePing != 0 {
		err = keepalive(d.f.Fd())
	} else {
		_, err = d.f.Write([]byte{0})
	}
	if err != nil {
		return fmt.Errorf("pinging watchdog %s: %w", d.path, err)
	}
	return nil
}

// BootStatus returns why the box last reset as the driver knows it;
// CardReset set means the watchdog did it.
func (d *Device) BootStatus() (Flags, error) {
	var v int32
	if err := ioctlInt(d.f.Fd(), unix.WDIOC_GETBOOTSTATUS, &v); err != nil {
		return 0, fmt.Errorf("watchdog %s: reading the boot status: %w", d.path, err)
	}
	return Flags(v), nil
}

// NoWayOut reports whether the driver refuses to stop the timer, as sysfs
// says; false when it cannot tell.
func (d *Device) NoWayOut() bool {
	v, ok := d.sysfsValue("nowayout")
	return ok && v == "1"
}

// sysfsValue reads one of the device's sysfs attributes.
func (d *Device) sysfsValue(name string) (string, bool) {
	if d.sysfs == "" {
		return "", false
	}
	b, err := os.ReadFile(d.sysfs + "/" + name)
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

// Disarm stops the timer and closes the device (the magic close: a 'V',
// then close). A driver with nowayout cannot stop: Disarm then returns
// ErrNoWayOut and leaves the device open, to be pinged on. If sysfs still
// shows the timer running after the close, the error says so, and the box
// will reset after the timeout unless the device is opened and pinged again.
func (d *Device) Disarm() error {
	if d.NoWayOut() {
		return fmt.Errorf("watchdog %s (%s): %w", d.path, d.identity, ErrNoWayOut)
	}
	_, werr := d.f.Write([]byte("V"))
	if err := d.f.Close(); err != nil {
		return fmt.Errorf("closing watchdog %s: %w", d.path, err)
	}
	if werr != nil {
		return fmt.Errorf("disarming watchdog %s: %w (it keeps running: open and ping it, or the box resets in %v)", d.path, werr, d.timeout)
	}
	if state, ok := d.sysfsValue("state"); ok && state == "active" {
		return fmt.Errorf("watchdog %s (%s) still runs after the magic close (see the kernel log; open and ping it, or the box resets in %v)", d.path, d.identity, d.timeout)
	}
	return nil
}

// Close closes the device and leaves the timer running, for the next
// process to open and ping; the box resets after the timeout otherwise.
// A driver without MagicClose in Options stops on close instead.
func (d *Device) Close() error {
	if err := d.f.Close(); err != nil {
		return fmt.Errorf("closing watchdog %s: %w", d.path, err)
	}
	return nil
}
