package watchdog

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeDriver stands in for the kernel behind the ioctl seams. The device
// itself is a plain file, so what is written to it can be read back.
type fakeDriver struct {
	identity   string
	options    Flags
	timeout    int32 // seconds
	maxTimeout int32 // SETTIMEOUT above it fails with EINVAL; 0: no limit
	clamp      int32 // if set, SETTIMEOUT takes this value instead
	bootStatus Flags
	keepalives int
	sysfs      string // the fake /sys/class/watchdog/watchdog0
}

// install swaps the seams for the fake and returns the device's path.
func (f *fakeDriver) install(t *testing.T) string {
	t.Helper()
	savedIoctl, savedSupport, savedKeepalive, savedRdev, savedRoot := ioctlInt, getSupport, keepalive, rdev, sysfsRoot
	t.Cleanup(func() {
		ioctlInt, getSupport, keepalive, rdev, sysfsRoot = savedIoctl, savedSupport, savedKeepalive, savedRdev, savedRoot
	})
	ioctlInt = func(_ uintptr, req uint, v *int32) error {
		switch req {
		case unix.WDIOC_GETTIMEOUT:
			*v = f.timeout
		case unix.WDIOC_SETTIMEOUT:
			if f.maxTimeout != 0 && *v > f.maxTimeout {
				return syscall.EINVAL
			}
			f.timeout = *v
			if f.clamp != 0 {
				f.timeout = f.clamp
			}
			*v = f.timeout
		case unix.WDIOC_GETBOOTSTATUS:
			*v = int32(f.bootStatus)
		default:
			return syscall.ENOTTY
		}
		return nil
	}
	getSupport = func(uintptr) (*unix.WatchdogInfo, error) {
		var info unix.WatchdogInfo
		info.Options = uint32(f.options)
		copy(info.Identity[:], f.identity)
		return &info, nil
	}
	keepalive = func(uintptr) error { f.keepalives++; return nil }
	rdev = func(*os.File) uint64 { return legacyDev }
	root := t.TempDir()
	sysfsRoot = root
	f.sysfs = filepath.Join(root, "class", "watchdog", "watchdog0")
	if err := os.MkdirAll(f.sysfs, 0o755); err != nil {
		t.Fatal(err)
	}
	f.set(t, "nowayout", "0")
	f.set(t, "state", "inactive")
	dev := filepath.Join(t.TempDir(), "watchdog")
	if err := os.WriteFile(dev, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return dev
}

// set writes one of the fake sysfs attributes.
func (f *fakeDriver) set(t *testing.T, name, value string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(f.sysfs, name), []byte(value+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// esb is QEMU's i6300ESB as Linux's driver presents it.
func esb() *fakeDriver {
	return &fakeDriver{identity: "i6300ESB timer", options: SetTimeout | KeepalivePing | MagicClose, timeout: 30, maxTimeout: 2046}
}

// written returns what was written to the fake device.
func written(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func open(t *testing.T, path string) *Device {
	t.Helper()
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestOpen(t *testing.T) {
	drv := esb()
	d := open(t, drv.install(t))
	defer d.Close()
	if got, want := d.Identity(), "i6300ESB timer"; got != want {
		t.Errorf("Identity() = %q, want %q", got, want)
	}
	if got, want := d.Timeout(), 30*time.Second; got != want {
		t.Errorf("Timeout() = %v, want the driver's %v", got, want)
	}
	if d.Options()&MagicClose == 0 {
		t.Errorf("Options() = %#x, want MagicClose", d.Options())
	}
	if got, want := d.sysfs, drv.sysfs; got != want {
		t.Errorf("sysfs dir of /dev/watchdog = %q, want watchdog0's %q", got, want)
	}

	_, err := Open(filepath.Join(t.TempDir(), "absent"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open(absent) = %v, want an error matching fs.ErrNotExist", err)
	}
}

// Another watchdog than the first is found in sysfs by its device number.
func TestOpenSysfsByDeviceNumber(t *testing.T) {
	drv := esb()
	path := drv.install(t)
	rdev = func(*os.File) uint64 { return unix.Mkdev(248, 1) }
	d := open(t, path)
	defer d.Close()
	if got, want := d.sysfs, sysfsRoot+"/dev/char/248:1"; got != want {
		t.Errorf("sysfs dir = %q, want %q", got, want)
	}
}

func TestSetTimeout(t *testing.T) {
	for _, tt := range []struct {
		name    string
		drv     func(*fakeDriver)
		ask     time.Duration
		want    time.Duration
		wantErr string
	}{
		{name: "boot timeout", ask: 120 * time.Second, want: 120 * time.Second},
		{name: "rounded up to whole seconds", ask: 1500 * time.Millisecond, want: 2 * time.Second},
		{name: "the driver picks a nearby value", drv: func(f *fakeDriver) { f.clamp = 119 }, ask: 120 * time.Second, want: 119 * time.Second},
		{name: "above the driver's limit", ask: 3000 * time.Second, wantErr: "setting the timeout to 3000s: invalid argument (the driver's limit may be lower; it keeps 30s)"},
		{name: "zero", ask: 0, wantErr: "timeout 0s is out of range"},
		{name: "negative", ask: -time.Second, wantErr: "out of range"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			drv := esb()
			if tt.drv != nil {
				tt.drv(drv)
			}
			d := open(t, drv.install(t))
			defer d.Close()
			got, err := d.SetTimeout(tt.ask)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("SetTimeout(%v) = %v, %v; want an error containing %q", tt.ask, got, err, tt.wantErr)
				}
				if d.Timeout() != 30*time.Second {
					t.Errorf("after a failed SetTimeout, Timeout() = %v, want the driver's 30s", d.Timeout())
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("SetTimeout(%v) = %v, %v; want %v", tt.ask, got, err, tt.want)
			}
			if d.Timeout() != tt.want {
				t.Errorf("Timeout() = %v after SetTimeout, want %v", d.Timeout(), tt.want)
			}
		})
	}
}

func TestPing(t *testing.T) {
	t.Run("keepalive ioctl", func(t *testing.T) {
		drv := esb()
		path := drv.install(t)
		d := open(t, path)
		defer d.Close()
		for i := 0; i < 2; i++ {
			if err := d.Ping(); err != nil {
				t.Fatal(err)
			}
		}
		if drv.keepalives != 2 || written(t, path) != "" {
			t.Errorf("2 pings made %d WDIOC_KEEPALIVE and wrote %q; want 2 and nothing", drv.keepalives, written(t, path))
		}
	})
	t.Run("a write for a driver without it", func(t *testing.T) {
		drv := esb()
		drv.options &^= KeepalivePing
		path := drv.install(t)
		d := open(t, path)
		defer d.Close()
		if err := d.Ping(); err != nil {
			t.Fatal(err)
		}
		if got := written(t, path); drv.keepalives != 0 || len(got) != 1 || strings.Contains(got, "V") {
			t.Errorf("ping wrote %q and made %d ioctls; want one byte, not the magic 'V'", got, drv.keepalives)
		}
	})
}

func TestBootStatus(t *testing.T) {
	drv := esb()
	drv.bootStatus = CardReset
	d := open(t, drv.install(t))
	defer d.Close()
	if got, err := d.BootStatus(); err != nil || got&CardReset == 0 {
		t.Errorf("BootStatus() = %#x, %v; want CardReset", got, err)
	}
}

func TestDisarm(t *testing.T) {
	t.Run("magic close", func(t *testing.T) {
		drv := esb()
		path := drv.install(t)
		d := open(t, path)
		if err := d.Disarm(); err != nil {
			t.Fatal(err)
		}
		if got := written(t, path); got != "V" {
			t.Errorf("Disarm wrote %q, want the magic %q", got, "V")
		}
		if err := d.Close(); !errors.Is(err, os.ErrClosed) {
			t.Errorf("Close after Disarm = %v, want os.ErrClosed: Disarm closes the device", err)
		}
	})
	t.Run("still running after the close", func(t *testing.T) {
		drv := esb()
		path := drv.install(t)
		d := open(t, path)
		drv.set(t, "state", "active")
		err := d.Disarm()
		if err == nil || !strings.Contains(err.Error(), "still runs after the magic close") {
			t.Errorf("Disarm with the timer still active = %v, want an error saying so", err)
		}
	})
	t.Run("nowayout", func(t *testing.T) {
		drv := esb()
		path := drv.install(t)
		d := open(t, path)
		defer d.Close()
		drv.set(t, "nowayout", "1")
		if err := d.Disarm(); !errors.Is(err, ErrNoWayOut) {
			t.Fatalf("Disarm with nowayout = %v, want ErrNoWayOut", err)
		}
		if got := written(t, path); got != "" {
			t.Errorf("Disarm with nowayout wrote %q, want nothing", got)
		}
		if _, err := d.f.Write([]byte{0}); err != nil {
			t.Errorf("after ErrNoWayOut the device must stay open to be pinged: %v", err)
		}
	})
}

// Close leaves the timer running: no magic character.
func TestCloseLeavesArmed(t *testing.T) {
	path := esb().install(t)
	d := open(t, path)
	if err := d.Ping(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if got := written(t, path); strings.Contains(got, "V") {
		t.Errorf("Close wrote %q: the magic 'V' disarms", got)
	}
}

type params map[string]string

func (p params) Get(k string) (string, bool) { v, ok := p[k]; return v, ok }

func TestTimeoutParam(t *testing.T) {
	for _, tt := range []struct {
		name    string
		params  params
		want    time.Duration
		wantErr bool
	}{
		{"absent: the boot timeout", params{}, BootTimeout, false},
		{"seconds", params{Param: "300"}, 300 * time.Second, false},
		{"zero is off", params{Param: "0"}, 0, false},
		{"the largest", params{Param: "86400"}, 24 * time.Hour, false},
		{"too large", params{Param: "86401"}, BootTimeout, true},
		{"a flag without value", params{Param: ""}, BootTimeout, true},
		{"with a unit", params{Param: "120s"}, BootTimeout, true},
		{"negative", params{Param: "-1"}, BootTimeout, true},
		{"off is spelled 0", params{Param: "off"}, BootTimeout, true},
		{"overflow", params{Param: "99999999999999999999"}, BootTimeout, true},
		{"other parameters do not count", params{"cairn.watchdogs": "5"}, BootTimeout, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := TimeoutParam(tt.params)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("TimeoutParam(%v) = %v, %v; want %v, error %v", tt.params, got, err, tt.want, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "cairn.watchdog=0 for no watchdog") {
				t.Errorf("the error does not say how to fix the parameter: %v", err)
			}
		})
	}
}

func FuzzTimeoutParam(f *testing.F) {
	f.Add("120")
	f.Add("0")
	f.Fuzz(func(t *testing.T, v string) {
		got, err := TimeoutParam(params{Param: v})
		if got < 0 || got > maxParam*time.Second || (err != nil && got != BootTimeout) {
			t.Fatalf("TimeoutParam(%q) = %v, %v", v, got, err)
		}
	})
}
