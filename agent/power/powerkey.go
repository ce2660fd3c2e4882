package power

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"time"
)

// Linux input event constants (linux/input-event-codes.h).
const (
	evKey    = 0x01
	keyPower = 116
)

// eventSize is sizeof(struct input_event) on 64-bit Linux: a 16-byte
// timeval, then type (u16), code (u16) and value (s32).
const eventSize = 24

// Event is one Linux input event, without its timestamp.
type Event struct {
	Type  uint16
	Code  uint16
	Value int32
}

// ParseEvents decodes whole input events from b (native little-endian
// layout of amd64 and arm64); a trailing partial event is ignored.
func ParseEvents(b []byte) []Event {
	var evs []Event
	for ; len(b) >= eventSize; b = b[eventSize:] {
		evs = append(evs, Event{
			Type:  binary.LittleEndian.Uint16(b[16:]),
			Code:  binary.LittleEndian.Uint16(b[18:]),
			Value: int32(binary.LittleEndian.Uint32(b[20:])),
		})
	}
	return evs
}

// IsPowerPress reports whether e is a press of the power key (ACPI power
// button on x86, gpio-keys on the arm64 virt machine; QEMU's
// system_powerdown presses it).
func IsPowerPress(e Event) bool {
	return e.Type == evKey && e.Code == keyPower && e.Value == 1
}

// InputGlob matches the evdev device nodes watched for the power key.
var InputGlob = "/dev/input/event*"

// WatchPowerKey reports presses of the power key on any input device on
// the returned channel until ctx ends. Input devices appear when their
// drivers probe, which can be after init starts, so it looks for new
// devices every second.
func WatchPowerKey(ctx context.Context) <-chan struct{} {
	pressed := make(chan struct{}, 1)
	open := map[string]bool{}
	scan := func() {
		paths, _ := filepath.Glob(InputGlob)
		for _, p := range paths {
			if open[p] {
				continue
			}
			f, err := os.Open(p)
			if err != nil {
				continue
			}
			open[p] = true
			go readPowerKey(ctx, f, pressed)
		}
	}
	// The devices present now are open when this returns, so no press
	// after it is lost; devices that appear later are picked up each second.
	scan()
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				scan()
			}
		}
	}()
	return pressed
}

func readPowerKey(ctx context.Context, f *os.File, pressed chan<- struct{}) {
	defer f.Close()
	go func() { <-ctx.Done(); f.Close() }()
	buf := make([]byte, 64*eventSize)
	for {
		n, err := f.Read(buf)
		if err != nil {
			return
		}
		for _, e := range ParseEvents(buf[:n-n%eventSize]) {
			if IsPowerPress(e) {
				select {
				case pressed <- struct{}{}:
				default:
				}
			}
		}
	}
}
