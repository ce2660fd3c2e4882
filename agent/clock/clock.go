// Package clock keeps the system clock sane on boards without a
// real-time clock (a Raspberry Pi boots in 1970): it never lets the clock
// go backwards across reboots, and sets it from NTP servers with a small
// SNTP client (RFC 4330).
//
//	s := clock.New(cfg, clock.WithBuildTime(buildTime))
//	if stepped, err := s.EnsureFloor(); ... // at boot, before any TLS
//	go s.Run(ctx)                           // SNTP; saves the time periodically
//	defer s.Save()                          // and at shutdown
//
// The client is our own (about 200 lines) rather than
// github.com/beevik/ntp: we need one request, the RFC 4330 checks and the
// offset, and the tests drive it against a server of their own.
package clock

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cairn-edge/cairn/agent/atomicfile"
	"github.com/cairn-edge/cairn/agent/contract"

	"golang.org/x/sys/unix"
)

// Config is the clock part of the image spec and agent configuration.
type Config struct {
	// NTP lists NTP servers: host names or addresses, optionally with a
	// port ("ntp.example:123", "[2001:db8::1]:123"). Empty means
	// DefaultServers.
	NTP []string `yaml:"ntp,omitempty" json:"ntp,omitempty"`
}

// DefaultServers are queried when Config.NTP is empty. A vendor shipping
// many devices should ask the NTP Pool for a vendor zone and set it.
var DefaultServers = []string{"pool.ntp.org"}

// StateFile is where the last known good time is kept by default.
const StateFile = contract.ClockFile

// Validate checks the server names.
func (c Config) Validate() error {
	var errs []error
	for i, s := range c.NTP {
		host, _, err := splitHostPort(s)
		if err != nil || host == "" || strings.ContainsAny(host, " /") {
			errs = append(errs, fmt.Errorf("ntp[%d]: %q is not a host name or address (optionally with :port)", i, s))
		}
	}
	return errors.Join(errs...)
}

// Seams to the kernel, swapped by tests.
var (
	now     = time.Now
	setTime = func(t time.Time) error {
		ts := unix.NsecToTimespec(t.UnixNano())
		return unix.ClockSettime(unix.CLOCK_REALTIME, &ts)
	}
	adjtimex = unix.Adjtimex
)

// Thresholds for correcting the clock after the first synchronisation:
// offsets up to stepThreshold are slewed (the kernel speeds up or slows
// the clock by 0.5 ms/s, so time stays monotonic for programs that
// measure it), larger ones are stepped. The first synchronisation after
// boot steps any offset from firstStepMin: a Pi's clock is minutes off.
const (
	stepThreshold = 500 * time.Millisecond
	firstStepMin  = 10 * time.Millisecond
)

// Syncer sets the system clock. Create it with New.
type Syncer struct {
	servers      []string
	statePath    string
	buildTime    time.Time
	log          *slog.Logger
	pollInterval time.Duration
	saveInterval time.Duration
	backoffMin   time.Duration
	backoffMax   time.Duration

	mu     sync.Mutex
	status Status
}

// Status is the clock state for the node API.
type Status struct {
	// Synced is true once an NTP server answered since boot.
	Synced   bool          `json:"synced"`
	LastSync time.Time     `json:"lastSync,omitzero"`
	Server   string        `json:"server,omitempty"`
	Offset   time.Duration `json:"offset"`
	Delay    time.Duration `json:"delay"`
	Stratum  int           `json:"stratum,omitempty"`
	// LastError is the last failed synchronisation's reason, cleared by
	// a success.
	LastError string `json:"lastError,omitempty"`
	// Floor is the earliest time the clock may show: the saved time or
	// the build time, whichever is later.
	Floor time.Time `json:"floor,omitzero"`
	// FloorSet is true when the clock was behind Floor at boot and
	// EnsureFloor set it forward: until Synced, the time is only the
	// floor, not the real-time clock's (a board without one).
	FloorSet bool `json:"floorSet,omitempty"`
	// LastSave is when the time was last written to the state file.
	LastSave time.Time `json:"lastSave,omitzero"`
}

// Option configures a Syncer.
type Option func(*Syncer)

// WithStateFile sets the file holding the last known good time
// (default StateFile, on the persistent /var).
func WithStateFile(path string) Option { return func(s *Syncer) { s.statePath = path } }

// WithBuildTime sets the image's build time, a floor for the clock when
// no saved time exists yet (first boot).
func WithBuildTime(t time.Time) Option { return func(s *Syncer) { s.buildTime = t } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Syncer) { s.log = l } }

// WithPollInterval sets the time between synchronisations once synced
// (default 15 minutes).
func WithPollInterval(d time.Duration) Option { return func(s *Syncer) { s.pollInterval = d } }

// WithSaveInterval sets how often the time is saved (default 15
// minutes: one small write, harmless to an SD card).
func WithSaveInterval(d time.Duration) Option { return func(s *Syncer) { s.saveInterval = d } }

// WithBackoff sets the first and the longest wait between failed
// synchronisation rounds (default 2 s doubling up to 5 minutes).
func WithBackoff(first, longest time.Duration) Option {
	return func(s *Syncer) { s.backoffMin, s.backoffMax = first, longest }
}

// New returns a Syncer for cfg; call cfg.Validate first to report errors.
func New(cfg Config, opts ...Option) *Syncer {
	s := &Syncer{
		servers:      cfg.NTP,
		statePath:    StateFile,
		log:          slog.Default(),
		pollInterval: 15 * time.Minute,
		saveInterval: 15 * time.Minute,
		backoffMin:   2 * time.Second,
		backoffMax:   5 * time.Minute,
	}
	if len(s.servers) == 0 {
		s.servers = DefaultServers
	}
	for _, o := range opts {
		o(s)
	}
	s.log = s.log.With("component", "clock")
	return s
}

// Status returns the current state.
func (s *Syncer) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// EnsureFloor makes sure the clock is not earlier than the last saved
// time or the build time: call it at boot before anything checks a
// certificate or a signature. It reports whether it set the clock.
func (s *Syncer) EnsureFloor() (bool, error) {
	floor := s.buildTime
	saved, err := s.readSaved()
	if err != nil {
		s.log.Warn("saved time ignored", "path", s.statePath, "err", err)
	}
	if saved.After(floor) {
		floor = saved
	}
	s.mu.Lock()
	s.status.Floor = floor
	s.mu.Unlock()
	if floor.IsZero() || !now().Before(floor) {
		return false, err
	}
	was := now()
	if serr := setTime(floor); serr != nil {
		return false, errors.Join(err, fmt.Errorf("setting the clock forward to %s: %w", floor.Format(time.RFC3339), serr))
	}
	s.log.Info("clock set forward to the last known time", "from", was.Format(time.RFC3339), "to", floor.Format(time.RFC3339))
	s.mu.Lock()
	s.status.FloorSet = true
	s.mu.Unlock()
	return true, err
}

// readSaved reads the state file; a missing file is the zero time.
func (s *Syncer) readSaved() (time.Time, error) {
	b, err := os.ReadFile(s.statePath)
	if errors.Is(err, fs.ErrNotExist) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	return parseSaved(b)
}

// parseSaved reads the state file's one line, an RFC 3339 time.
func parseSaved(b []byte) (time.Time, error) {
	line := strings.TrimSpace(string(b))
	if len(line) > 64 {
		return time.Time{}, fmt.Errorf("%d bytes, not a time", len(b))
	}
	t, err := time.Parse(time.RFC3339Nano, line)
	if err != nil {
		return time.Time{}, fmt.Errorf("not an RFC 3339 time: %q", line)
	}
	return t.UTC(), nil
}

// Save writes the current time to the state file, so the next boot does
// not start earlier. It writes only a time it trusts: once synced, or
// when the clock is not behind the saved time (an unsynced clock that
// went backwards must not lower the floor). Call it at shutdown.
func (s *Syncer) Save() error {
	t := now().UTC()
	s.mu.Lock()
	synced := s.status.Synced
	s.mu.Unlock()
	if !synced {
		if saved, err := s.readSaved(); err == nil && t.Before(saved) {
			return fmt.Errorf("not saving %s: earlier than the saved %s and not synchronised", t.Format(time.RFC3339), saved.Format(time.RFC3339))
		}
	}
	if err := atomicfile.WriteFile(s.statePath, []byte(t.Format(time.RFC3339Nano)+"\n"), 0o644); err != nil {
		return fmt.Errorf("saving the time to %s: %w", s.statePath, err)
	}
	s.mu.Lock()
	s.status.LastSave = t
	s.mu.Unlock()
	return nil
}

// Run synchronises the clock until ctx is done: at once, then every poll
// interval, retrying with backoff while no server answers (offline, no
// DNS yet). It saves the time periodically and when ctx is done.
func (s *Syncer) Run(ctx context.Context) error {
	saveTick := time.NewTicker(s.saveInterval)
	defer saveTick.Stop()
	backoff := s.backoffMin
	failures := 0
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := s.Save(); err != nil {
				s.log.Warn("cannot save the time", "err", err)
			}
			return nil
		case <-saveTick.C:
			if err := s.Save(); err != nil {
				s.log.Warn("cannot save the time", "err", err)
			}
			continue
		case <-timer.C:
		}
		if err := s.Sync(ctx); err != nil {
			if ctx.Err() != nil {
				continue
			}
			failures++
			if failures == 1 {
				s.log.Warn("clock not synchronised, retrying", "err", err, "in", backoff)
			} else {
				s.log.Debug("clock not synchronised, retrying", "err", err, "in", backoff)
			}
			timer.Reset(backoff)
			backoff = min(2*backoff, s.backoffMax)
			continue
		}
		failures, backoff = 0, s.backoffMin
		timer.Reset(s.pollInterval)
	}
}

// Sync queries the servers in order (every address of each name) until
// one answers, and corrects the clock: a step at the first
// synchronisation since boot and for large offsets, a slew otherwise.
func (s *Syncer) Sync(ctx context.Context) error {
	sample, err := s.query(ctx)
	if err != nil {
		s.mu.Lock()
		s.status.LastError = err.Error()
		s.mu.Unlock()
		return err
	}
	s.mu.Lock()
	first := !s.status.Synced
	s.mu.Unlock()
	abs := max(sample.Offset, -sample.Offset)
	switch {
	case first && abs >= firstStepMin, abs > stepThreshold:
		err = setTime(now().Add(sample.Offset))
		if err == nil {
			s.log.Info("clock stepped", "offset", sample.Offset, "server", sample.Server)
		}
	default:
		err = slew(sample.Offset)
		if err == nil {
			s.log.Debug("clock slewed", "offset", sample.Offset, "server", sample.Server)
		}
	}
	if err != nil {
		err = fmt.Errorf("correcting the clock by %v: %w", sample.Offset, err)
		s.mu.Lock()
		s.status.LastError = err.Error()
		s.mu.Unlock()
		return err
	}
	s.mu.Lock()
	s.status.Synced = true
	s.status.LastSync = now()
	s.status.Server, s.status.Offset, s.status.Delay, s.status.Stratum = sample.Server, sample.Offset, sample.Delay, sample.Stratum
	s.status.LastError = ""
	s.mu.Unlock()
	if first {
		if err := s.Save(); err != nil {
			s.log.Warn("cannot save the time", "err", err)
		}
	}
	return nil
}

// maxAddrsPerName bounds the addresses tried per server name (a pool
// name resolves to four).
const maxAddrsPerName = 4

func (s *Syncer) query(ctx context.Context) (Sample, error) {
	var errs []error
	for _, srv := range s.servers {
		host, port, err := splitHostPort(srv)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for i, ip := range ips {
			if i == maxAddrsPerName {
				break
			}
			sample, err := Query(ctx, net.JoinHostPort(ip.Unmap().String(), port))
			if err == nil {
				return sample, nil
			}
			errs = append(errs, err)
			if ctx.Err() != nil {
				return Sample{}, ctx.Err()
			}
		}
	}
	return Sample{}, errors.Join(errs...)
}

// splitHostPort accepts "host", "host:port", "v6addr" and "[v6addr]:port".
func splitHostPort(s string) (host, port string, err error) {
	if h, p, err := net.SplitHostPort(s); err == nil {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", "", fmt.Errorf("%q: port %q is not a number from 1 to 65535", s, p)
		}
		return h, p, nil
	}
	if strings.Count(s, ":") > 1 || !strings.Contains(s, ":") {
		return strings.Trim(s, "[]"), "123", nil
	}
	return "", "", fmt.Errorf("%q: not host or host:port", s)
}

// slew asks the kernel to correct offset gradually (adjtime(3) style).
func slew(offset time.Duration) error {
	tx := unix.Timex{Modes: unix.ADJ_OFFSET_SINGLESHOT}
	setInt(&tx.Offset, offset.Microseconds())
	_, err := adjtimex(&tx)
	return err
}

// setInt assigns to a Timex field that is 32 bits wide on 32-bit arches.
func setInt[T ~int32 | ~int64](dst *T, v int64) { *dst = T(v) }
