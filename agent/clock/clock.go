// Package clock keeps the system clock sane on boards without a
// real-time clock (a Raspberry Pi boots in 1970): it never lets the clock
// go backwards across reboots, and sets it from NTP servers with a small
// SNTP client (RFC 4330).
//
//	s := clock.New(cfg, clock.WithBuildTime(buildTime))
//	if stepped, err := s.EnsureFloor(); ... // at boot, before any TLS
//	go s.Run(ctx)                           // SNTP; saves the time periodically
//	defer s.Save()                          // and at shutdown
//	st, err := s.Set(t)                     // an administrator's time (node API)
//
// SNTP is unauthenticated UDP, so no single reply moves the clock far
// (agree.go has the rules): a step needs samples that agree within a
// second, from two configured servers or, with one, from three fresh
// exchanges; it never goes before the floor (the saved time or the build
// time) nor more than 10 years past the build time. Only a confirmed step, the
// administrator, or a clock running on from the floor raises the saved
// time, so one spoofed reply can neither set the clock nor stay across
// reboots.
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
// measure it), larger ones are stepped, when samples agree (agree.go).
// The first synchronisation after boot steps any agreed offset from
// firstStepMin: a Pi's clock is minutes off.
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

	mu          sync.Mutex
	status      Status
	floorLoaded bool
	// refusing is set while steps are being refused, so the warning is
	// logged once per spell, not at every retry.
	refusing bool
}

// Where the clock's time comes from (Status.Source).
const (
	SourceRTC   = "rtc"   // the real-time clock's, not confirmed
	SourceFloor = "floor" // set forward to the floor at boot, running on from it
	SourceNTP   = "ntp"   // confirmed by NTP servers that agree
	SourceAdmin = "admin" // set by an administrator (cairn node clock set)
)

// Status is the clock state for the node API.
type Status struct {
	// Synced is true once NTP samples that agree confirmed the clock (or
	// stepped it) since boot; later rounds keep it by slewing.
	Synced bool `json:"synced"`
	// Source says where the time comes from: SourceRTC, SourceFloor,
	// SourceNTP or SourceAdmin.
	Source string `json:"source,omitempty"`
	// Trusted is true when the time may be saved as the floor: confirmed
	// by NTP, set by an administrator, or running on from the floor. An
	// unconfirmed real-time clock is not trusted.
	Trusted  bool          `json:"trusted"`
	LastSync time.Time     `json:"lastSync,omitzero"`
	Server   string        `json:"server,omitempty"`
	Offset   time.Duration `json:"offset"`
	Delay    time.Duration `json:"delay"`
	Stratum  int           `json:"stratum,omitempty"`
	// LastError is the last failed synchronisation's reason, cleared by
	// a confirmation.
	LastError string `json:"lastError,omitempty"`
	// Floor is the earliest time the clock may show: the saved time or
	// the build time, whichever is later. No NTP step goes before it (nor
	// more than 10 years past the build time).
	Floor time.Time `json:"floor,omitzero"`
	// FloorSet is true when the clock was behind Floor at boot and
	// EnsureFloor set it forward: until Synced, the time is only the
	// floor, not the real-time clock's (a board without one).
	FloorSet bool `json:"floorSet,omitempty"`
	// LastSave is when the time was last written to the state file.
	LastSave time.Time `json:"lastSave,omitzero"`
	// Refused is the last step not taken, kept after later successes.
	Refused *Refusal `json:"refused,omitempty"`
	// AdminSet is when an administrator last set the clock.
	AdminSet time.Time `json:"adminSet,omitzero"`
}

// Refusal is a step the clock did not take.
type Refusal struct {
	At     time.Time     `json:"at"`
	Offset time.Duration `json:"offset"` // of the sample the step would have followed
	Reason string        `json:"reason"` // names the servers and what each said
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
		status:       Status{Source: SourceRTC},
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
	st := s.status
	if st.Refused != nil {
		r := *st.Refused
		st.Refused = &r
	}
	return st
}

// EnsureFloor makes sure the clock is not earlier than the last saved
// time or the build time: call it at boot before anything checks a
// certificate or a signature. It reports whether it set the clock.
func (s *Syncer) EnsureFloor() (bool, error) {
	floor, err := s.loadFloor()
	if err != nil {
		s.log.Warn("saved time ignored", "path", s.statePath, "err", err)
	}
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
	s.status.Source, s.status.Trusted = SourceFloor, true
	s.mu.Unlock()
	return true, err
}

// loadFloor reads the floor, the later of the saved and the build time,
// into the status the first time; after that the status holds it (Save
// and Set move it).
func (s *Syncer) loadFloor() (time.Time, error) {
	s.mu.Lock()
	if s.floorLoaded {
		defer s.mu.Unlock()
		return s.status.Floor, nil
	}
	s.mu.Unlock()
	floor := s.buildTime
	saved, err := s.readSaved()
	if saved.After(floor) {
		floor = saved
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status.Floor, s.floorLoaded = floor, true
	return floor, err
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

// ErrUntrusted is what Save returns, wrapped, for a clock it does not
// trust: an unconfirmed real-time clock must not raise the floor.
var ErrUntrusted = errors.New("the clock is not trusted")

// Save writes the current time to the state file, so the next boot does
// not start earlier. It writes only a time it trusts (Status.Trusted:
// confirmed by NTP, set by an administrator, or running on from the
// floor), and never one before the saved time. Call it at shutdown.
func (s *Syncer) Save() error {
	t := now().UTC()
	s.mu.Lock()
	trusted := s.status.Trusted
	s.mu.Unlock()
	if !trusted {
		return fmt.Errorf("not saving %s: %w (not confirmed by NTP; cairn node clock set confirms it)", t.Format(time.RFC3339), ErrUntrusted)
	}
	if saved, err := s.readSaved(); err == nil && t.Before(saved) {
		return fmt.Errorf("not saving %s: earlier than the saved %s", t.Format(time.RFC3339), saved.Format(time.RFC3339))
	}
	return s.write(t)
}

// write saves t as the floor.
func (s *Syncer) write(t time.Time) error {
	if err := atomicfile.WriteFile(s.statePath, []byte(t.Format(time.RFC3339Nano)+"\n"), 0o644); err != nil {
		return fmt.Errorf("saving the time to %s: %w", s.statePath, err)
	}
	s.mu.Lock()
	s.status.LastSave = t
	if t.After(s.status.Floor) {
		s.status.Floor = t
	}
	s.mu.Unlock()
	return nil
}

// ErrBeforeBuild is what Set returns, wrapped, for a time before the
// image was built: the workstation's clock is wrong.
var ErrBeforeBuild = errors.New("before the image was built")

// Set sets the clock to t on an administrator's word (cairn node clock
// set sends the workstation's time) and saves t as the floor, even when
// that lowers it: this is how a floor raised by a wrong time is undone.
// The clock is then trusted; NTP servers that agree may still correct it
// within the floor's bounds. Times before the build time are refused.
func (s *Syncer) Set(t time.Time) (Status, error) {
	t = t.UTC()
	if !s.buildTime.IsZero() && t.Before(s.buildTime) {
		return s.Status(), fmt.Errorf("%s is %w (%s): check the workstation's clock", t.Format(time.RFC3339), ErrBeforeBuild, s.buildTime.UTC().Format(time.RFC3339))
	}
	was := now()
	if err := setTime(t); err != nil {
		return s.Status(), fmt.Errorf("setting the clock to %s: %w", t.Format(time.RFC3339), err)
	}
	s.mu.Lock()
	oldFloor := s.status.Floor
	s.status.Floor, s.floorLoaded = t, true
	s.status.Synced = false
	s.status.Source, s.status.Trusted, s.status.AdminSet = SourceAdmin, true, t
	s.refusing = false
	s.mu.Unlock()
	if t.Before(oldFloor) {
		s.log.Warn("clock floor lowered by the administrator", "from", oldFloor.Format(time.RFC3339), "to", t.Format(time.RFC3339))
	}
	s.log.Info("clock set by the administrator", "from", was.Format(time.RFC3339Nano), "to", t.Format(time.RFC3339Nano))
	return s.Status(), s.write(t)
}

// Run synchronises the clock until ctx is done: at once, then every poll
// interval, retrying with backoff while no server answers (offline, no
// DNS yet) or the answers do not agree. It saves the time periodically
// and when ctx is done, when the clock is trusted.
func (s *Syncer) Run(ctx context.Context) error {
	saveTick := time.NewTicker(s.saveInterval)
	defer saveTick.Stop()
	backoff := s.backoffMin
	failures := 0
	timer := time.NewTimer(0)
	defer timer.Stop()
	save := func() {
		err := s.Save()
		switch {
		case errors.Is(err, ErrUntrusted):
			s.log.Debug("time not saved", "err", err)
		case err != nil:
			s.log.Warn("cannot save the time", "err", err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			save()
			return nil
		case <-saveTick.C:
			save()
			continue
		case <-timer.C:
		}
		if err := s.Sync(ctx); err != nil {
			if ctx.Err() != nil {
				continue
			}
			failures++
			var refused *RefusedError
			if failures == 1 && !errors.As(err, &refused) { // Sync warned of a refusal
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

// RefusedError is Sync's error when it refused to step the clock.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return "clock step refused: " + e.Reason }

// Sync takes one round of NTP samples and corrects the clock as decide
// rules: once synced, one answer within the slew limit is slewed; a
// larger offset, or any before the first confirmation, takes a sample
// from every configured server (or three from the only one), and only
// samples that agree step the clock, never before the floor nor more
// than 10 years past the build time. A refused step leaves the clock and the floor
// alone, and is logged once and kept in Status.Refused.
func (s *Syncer) Sync(ctx context.Context) error {
	floor, _ := s.loadFloor()
	s.mu.Lock()
	synced := s.status.Synced
	s.mu.Unlock()
	r := round{servers: len(s.servers), synced: synced, floor: floor, limit: stepLimit(s.buildTime, floor)}
	var d decision
	if synced {
		sample, err := s.queryFirst(ctx)
		if err != nil {
			return s.failed(err)
		}
		r.samples, r.now = []Sample{sample}, now()
		d = decide(r)
	}
	if d.act != slewClock {
		samples, err := s.collect(ctx)
		if len(samples) == 0 {
			return s.failed(err)
		}
		r.samples, r.now = samples, now()
		d = decide(r)
	}
	if d.refused != "" {
		return s.refuse(d)
	}

	var err error
	switch d.act {
	case stepClock:
		err = setTime(now().Add(d.offset))
		if err == nil {
			s.log.Info("clock stepped", "offset", d.offset, "server", d.sample.Server, "agreeing", len(r.samples)-len(d.outliers))
		}
	case slewClock:
		err = slew(d.offset)
		if err == nil {
			s.log.Debug("clock slewed", "offset", d.offset, "server", d.sample.Server)
		}
	}
	if err != nil {
		return s.failed(fmt.Errorf("correcting the clock by %v: %w", d.offset, err))
	}
	if len(d.outliers) > 0 {
		s.log.Warn("NTP server disagrees with the others, ignored", "outliers", describe(d.outliers, r.now))
	}
	if !d.confirmed && (d.act == leave || !synced) {
		return s.failed(errors.New("not confirmed: " + d.unconfirmed))
	}
	s.mu.Lock()
	first := !s.status.Synced
	s.status.Synced, s.status.Source, s.status.Trusted = true, SourceNTP, true
	s.status.LastSync = now()
	s.status.Server, s.status.Offset, s.status.Delay, s.status.Stratum = d.sample.Server, d.offset, d.sample.Delay, d.sample.Stratum
	s.status.LastError = ""
	s.refusing = false
	s.mu.Unlock()
	if first || d.act == stepClock {
		if err := s.Save(); err != nil {
			s.log.Warn("cannot save the time", "err", err)
		}
	}
	return nil
}

// failed records err as the last error and returns it.
func (s *Syncer) failed(err error) error {
	s.mu.Lock()
	s.status.LastError = err.Error()
	s.mu.Unlock()
	return err
}

// refuse records a refused step, warns of it once per spell of refusals,
// and returns it as a *RefusedError.
func (s *Syncer) refuse(d decision) error {
	s.mu.Lock()
	s.status.Refused = &Refusal{At: now(), Offset: d.sample.Offset, Reason: d.refused}
	s.status.LastError = "step refused: " + d.refused
	warned := s.refusing
	s.refusing = true
	s.mu.Unlock()
	if !warned {
		s.log.Warn("clock step refused", "reason", d.refused)
	} else {
		s.log.Debug("clock step refused", "reason", d.refused)
	}
	return &RefusedError{Reason: d.refused}
}

// maxAddrsPerName bounds the addresses tried per server name (a pool
// name resolves to four).
const maxAddrsPerName = 4

// queryFirst asks the servers in order until one answers.
func (s *Syncer) queryFirst(ctx context.Context) (Sample, error) {
	var errs []error
	for _, srv := range s.servers {
		sample, err := queryName(ctx, srv, 0)
		if err == nil {
			return sample, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			return Sample{}, ctx.Err()
		}
	}
	return Sample{}, errors.Join(errs...)
}

// collect takes the samples of a round that may step the clock: one from
// each configured server, asked at once, or samplesOneServer from the only
// one, each a fresh exchange starting at its next address. It returns the
// samples taken and the errors of those that failed.
func (s *Syncer) collect(ctx context.Context) ([]Sample, error) {
	n, name := len(s.servers), func(i int) string { return s.servers[i] }
	if n == 1 {
		n, name = samplesOneServer, func(int) string { return s.servers[0] }
	}
	samples, errs := make([]Sample, n), make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		if len(s.servers) == 1 { // one after the other: a burst is impolite
			samples[i], errs[i] = queryName(ctx, name(i), i)
			continue
		}
		wg.Go(func() { samples[i], errs[i] = queryName(ctx, name(i), 0) })
	}
	wg.Wait()
	var got []Sample
	for i, err := range errs {
		if err == nil {
			got = append(got, samples[i])
		}
	}
	return got, errors.Join(errs...)
}

// queryName does one exchange with the server name (host[:port]), trying
// its addresses from the start'th on until one answers.
func queryName(ctx context.Context, name string, start int) (Sample, error) {
	host, port, err := splitHostPort(name)
	if err != nil {
		return Sample{}, err
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return Sample{}, err
	}
	n := min(len(ips), maxAddrsPerName)
	var errs []error
	for k := range n {
		ip := ips[(start+k)%n]
		sample, err := Query(ctx, net.JoinHostPort(ip.Unmap().String(), port))
		if err == nil {
			sample.Name = name
			return sample, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			return Sample{}, ctx.Err()
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
