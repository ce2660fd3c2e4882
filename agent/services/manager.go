package services

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/cairn-edge/cairn/agent/config"
	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/agent/supervisor"
)

// ErrUnknown is wrapped by the errors of Restart and Logs for a name that is
// no service of the Manager.
var ErrUnknown = errors.New("no such service")

// Options configure a Manager. The zero value is right for a node.
type Options struct {
	// Address is containerd's socket (default /run/containerd/containerd.sock).
	Address string
	// ImagesDir holds one OCI layout per service, named after it
	// (default /usr/share/cairn/images).
	ImagesDir string
	// LogDir holds each service's rotated log, <name>.log (default /var/log/cairn).
	LogDir string
	// LogSize caps one log file (default 1 MiB); LogFiles is how many are
	// kept per service, the current one included (default 2).
	LogSize  int64
	LogFiles int
	// RingSize is the in-memory log kept per service for Logs (default 256 KiB).
	RingSize int
	// RunDir holds the services' sd_notify sockets (default /run/cairn/services).
	RunDir string
	// Snapshotter unpacks images and makes root file systems (default overlayfs).
	Snapshotter string
	// Backoff spaces restarts (default 1 s doubling to 30 s, reset after a
	// run longer than 30 s).
	Backoff supervisor.Backoff
	// StopTimeout is how long a service has between SIGTERM and SIGKILL
	// (default 10 s).
	StopTimeout time.Duration
	// Log receives the Manager's own messages (default slog.Default()).
	Log *slog.Logger
}

func (o *Options) setDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.Address, "/run/containerd/containerd.sock")
	def(&o.ImagesDir, contract.ServiceImagesDir)
	def(&o.LogDir, contract.LogDir)
	def(&o.RunDir, contract.ServicesRunDir)
	def(&o.Snapshotter, "overlayfs")
	if o.LogSize <= 0 {
		o.LogSize = 1 << 20
	}
	if o.LogFiles <= 0 {
		o.LogFiles = 2
	}
	if o.RingSize <= 0 {
		o.RingSize = 256 << 10
	}
	if o.Backoff == (supervisor.Backoff{}) {
		o.Backoff = supervisor.DefaultBackoff
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = 10 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
}

// State is where a service is in its life.
type State string

// config.Service states.
const (
	StateWaiting  State = "waiting"  // for its dependencies to be ready
	StateStarting State = "starting" // running, not ready yet
	StateRunning  State = "running"  // running and ready
	StateBackoff  State = "backoff"  // exited or failed to start; restarts after a delay
	StateExited   State = "exited"   // exited; its restart policy keeps it down
	StateStopped  State = "stopped"  // stopped by Stop
)

// Exit is how a service's process ended.
type Exit struct {
	Code uint32    `json:"code"` // exit status; 128+n for signal n; 255 if unknown
	At   time.Time `json:"at"`
}

// Status is a service's state as List reports it.
type Status struct {
	Name      string    `json:"name"`
	State     State     `json:"state"`
	Ready     bool      `json:"ready"`
	PID       uint32    `json:"pid,omitempty"` // host PID of its main process
	Restarts  int       `json:"restarts"`      // starts after the first
	LastExit  *Exit     `json:"lastExit,omitempty"`
	LastError string    `json:"lastError,omitempty"` // why the last start or readiness check failed
	Since     time.Time `json:"since"`               // when State last changed
}

// Manager runs a set of services in containerd.
type Manager struct {
	opts   Options
	order  []string
	units  map[string]*unit
	ctx    context.Context // lives until Stop
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	client  *containerd.Client
	started bool
}

// unit is one service and what the Manager keeps about it.
type unit struct {
	svc      config.Service
	ring     *Ring
	file     *RotatingFile
	out      io.Writer
	run      *taskRunner
	sup      *supervisor.Supervisor // runs it under its restart policy
	firstRdy chan struct{}          // closed the first time it is ready
	ctx      context.Context        // ends with Stop
	stop     context.CancelFunc
	done     chan struct{} // closed when its supervision ends

	mu      sync.Mutex
	status  Status // but Restarts and LastExit, which sup counts
	task    containerd.Task
	rdyOnce sync.Once
}

// NewManager validates svcs and prepares their logs; nothing starts before
// Start.
func NewManager(svcs []config.Service, opts Options) (*Manager, error) {
	if err := config.ValidateServices(svcs); err != nil {
		return nil, err
	}
	order, _ := config.ServiceOrder(svcs)
	opts.setDefaults()
	m := &Manager{opts: opts, order: order, units: map[string]*unit{}}
	m.ctx, m.cancel = context.WithCancel(namespaces.WithNamespace(context.Background(), Namespace))
	for _, s := range svcs {
		u := &unit{
			svc:      s,
			ring:     NewRing(opts.RingSize),
			file:     &RotatingFile{Path: filepath.Join(opts.LogDir, s.Name+".log"), MaxSize: opts.LogSize, Keep: opts.LogFiles},
			firstRdy: make(chan struct{}),
			done:     make(chan struct{}),
			status:   Status{Name: s.Name, State: StateWaiting, Since: time.Now()},
		}
		u.out = &logWriter{ring: u.ring, file: u.file}
		u.ctx, u.stop = context.WithCancel(m.ctx)
		u.run = &taskRunner{m: m, u: u, first: true}
		u.sup = supervisor.New(u.run, supervisor.Policy{Restart: supervisor.Mode(s.Restart), Backoff: opts.Backoff}, m.hooks(u))
		m.units[s.Name] = u
	}
	return m, nil
}

// Start connects to containerd and starts every service, each after its
// dependencies are ready. It returns once all are ready, or when ctx ends
// with an error naming those that are not and why. Either way the services
// stay supervised (restarted, started late) until Stop.
func (m *Manager) Start(ctx context.Context) error {
	m.mu.Lock()
	if m.started {
		m.mu.Unlock()
		return errors.New("services: Start called twice")
	}
	m.started = true
	m.mu.Unlock()

	c, err := containerd.New(m.opts.Address, containerd.WithDefaultNamespace(Namespace))
	if err != nil {
		return fmt.Errorf("containerd at %s: %w", m.opts.Address, err)
	}
	m.mu.Lock()
	m.client = c
	m.mu.Unlock()
	for _, name := range m.order {
		u := m.units[name]
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			defer close(u.done)
			m.supervise(u)
		}()
	}
	for _, name := range m.order {
		select {
		case <-m.units[name].firstRdy:
		case <-ctx.Done():
			var bad []string
			for _, st := range m.List() {
				if !st.Ready {
					why := string(st.State)
					if st.LastError != "" {
						why += ": " + st.LastError
					}
					bad = append(bad, fmt.Sprintf("%s (%s)", st.Name, why))
				}
			}
			return fmt.Errorf("services not ready: %s", strings.Join(bad, "; "))
		}
	}
	return nil
}

// List returns every service's status, in start order.
func (m *Manager) List() []Status {
	var out []Status
	for _, name := range m.order {
		u := m.units[name]
		// The supervisor's count first: the Starting hook runs before a
		// restart is counted, so a counted restart is never shown with the
		// state of the run before it.
		sup := u.sup.Status()
		u.mu.Lock()
		st := u.status
		u.mu.Unlock()
		st.Restarts = sup.Restarts
		if e := sup.LastExit; e != nil {
			st.LastExit = &Exit{Code: uint32(e.Code), At: e.At}
		}
		out = append(out, st)
	}
	return out
}

// Restart stops the named service (SIGTERM, then SIGKILL after the stop
// timeout) and starts it again at once, or starts it now if it is down.
func (m *Manager) Restart(name string) error {
	u, ok := m.units[name]
	if !ok {
		return fmt.Errorf("%w: %q (have %s)", ErrUnknown, name, strings.Join(m.order, ", "))
	}
	u.sup.RestartNow()
	return nil
}

// Logs returns the named service's kept output, its last tail lines (all
// when tail is 0); with follow, the reader goes on with new output until
// closed.
func (m *Manager) Logs(name string, follow bool, tail int) (io.ReadCloser, error) {
	u, ok := m.units[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q (have %s)", ErrUnknown, name, strings.Join(m.order, ", "))
	}
	return u.ring.NewReader(follow, tail), nil
}

// Stop stops the services in reverse dependency order, each with SIGTERM and
// SIGKILL after the stop timeout, and disconnects from containerd. ctx
// bounds the whole; containers still running when it ends are left to
// containerd.
func (m *Manager) Stop(ctx context.Context) error {
	for _, name := range slices.Backward(m.order) {
		u := m.units[name]
		u.stop() // its runner kills its task
		select {
		case <-u.done:
		case <-ctx.Done():
		}
	}
	m.cancel()
	m.wg.Wait()
	var errs []error
	for _, u := range m.units {
		errs = append(errs, u.file.Close())
	}
	m.mu.Lock()
	if m.client != nil {
		errs = append(errs, m.client.Close())
	}
	m.mu.Unlock()
	return errors.Join(errs...)
}

func (u *unit) set(f func(*Status)) {
	u.mu.Lock()
	defer u.mu.Unlock()
	old := u.status.State
	f(&u.status)
	if u.status.State != old {
		u.status.Since = time.Now()
	}
}

// supervise runs one service until Stop: after its dependencies, under
// its supervisor.
func (m *Manager) supervise(u *unit) {
	defer u.set(func(s *Status) { s.State, s.Ready, s.PID = StateStopped, false, 0 })
	if !m.awaitDependencies(u) {
		return
	}
	if u.svc.Ready.Notify {
		notify, err := listenNotify(filepath.Join(m.opts.RunDir, u.svc.Name))
		if err != nil {
			m.opts.Log.Error("service: no sd_notify socket", "service", u.svc.Name, "err", err)
			u.set(func(s *Status) { s.LastError = err.Error() })
		} else {
			defer notify.Close()
			u.run.notify = notify
		}
	}
	u.sup.Run(u.ctx)
}

// hooks turn what u's supervisor does into u's status and the log.
func (m *Manager) hooks(u *unit) supervisor.Hooks {
	log := m.opts.Log.With("service", u.svc.Name)
	return supervisor.Hooks{
		Starting: func() {
			u.set(func(s *Status) { s.State, s.Ready = StateStarting, false })
		},
		Started: func(pid int) {
			u.set(func(s *Status) { s.State, s.PID, s.Ready = StateStarting, uint32(pid), false })
		},
		Exited: func(e supervisor.Exit, err error) {
			if err != nil {
				log.Warn("service: start failed", "err", err)
				u.set(func(s *Status) { s.LastError = err.Error() })
				return
			}
			log.Warn("service: exited", "code", uint32(e.Code))
		},
		Waiting: func(_ time.Duration, down bool) {
			state := StateBackoff
			if down { // its restart policy keeps it down
				state = StateExited
			}
			u.set(func(s *Status) { s.State, s.Ready, s.PID = state, false, 0 })
		},
	}
}
