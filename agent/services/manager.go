package services

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

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

// Service states.
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
	svc       Service
	ring      *Ring
	file      *RotatingFile
	out       io.Writer
	firstRdy  chan struct{} // closed the first time it is ready
	restartCh chan struct{} // Restart's wake-up for a service that is down
	stopCh    chan struct{} // closed by Stop
	done      chan struct{} // closed when its supervision ends

	mu        sync.Mutex
	status    Status
	task      containerd.Task
	restartRq bool
	rdyOnce   sync.Once
}

// NewManager validates svcs and prepares their logs; nothing starts before
// Start.
func NewManager(svcs []Service, opts Options) (*Manager, error) {
	if err := Validate(svcs); err != nil {
		return nil, err
	}
	order, _ := Order(svcs)
	opts.setDefaults()
	m := &Manager{opts: opts, order: order, units: map[string]*unit{}}
	m.ctx, m.cancel = context.WithCancel(namespaces.WithNamespace(context.Background(), Namespace))
	for _, s := range svcs {
		u := &unit{
			svc:       s,
			ring:      NewRing(opts.RingSize),
			file:      &RotatingFile{Path: filepath.Join(opts.LogDir, s.Name+".log"), MaxSize: opts.LogSize, Keep: opts.LogFiles},
			firstRdy:  make(chan struct{}),
			restartCh: make(chan struct{}, 1),
			stopCh:    make(chan struct{}),
			done:      make(chan struct{}),
			status:    Status{Name: s.Name, State: StateWaiting, Since: time.Now()},
		}
		u.out = &logWriter{ring: u.ring, file: u.file}
		m.units[s.Name] = u
	}
	return m, nil
}

// logWriter sends a service's output to its ring and its file; a full or
// broken disk never blocks the service.
type logWriter struct {
	ring *Ring
	file *RotatingFile
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.ring.Write(p)
	w.file.Write(p)
	return len(p), nil
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
		u.mu.Lock()
		st := u.status
		if st.LastExit != nil {
			e := *st.LastExit
			st.LastExit = &e
		}
		u.mu.Unlock()
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
	u.mu.Lock()
	task := u.task
	u.restartRq = true
	u.mu.Unlock()
	select {
	case u.restartCh <- struct{}{}:
	default:
	}
	if task != nil {
		go m.kill(u, task)
	}
	return nil
}

// Logs returns the named service's kept output; with follow, the reader
// goes on with new output until closed.
func (m *Manager) Logs(name string, follow bool) (io.ReadCloser, error) {
	u, ok := m.units[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q (have %s)", ErrUnknown, name, strings.Join(m.order, ", "))
	}
	return u.ring.NewReader(follow), nil
}

// Stop stops the services in reverse dependency order, each with SIGTERM and
// SIGKILL after the stop timeout, and disconnects from containerd. ctx
// bounds the whole; containers still running when it ends are left to
// containerd.
func (m *Manager) Stop(ctx context.Context) error {
	for _, name := range slices.Backward(m.order) {
		u := m.units[name]
		u.mu.Lock()
		select {
		case <-u.stopCh:
		default:
			close(u.stopCh)
		}
		task := u.task
		u.mu.Unlock()
		if task != nil {
			go m.kill(u, task)
		}
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

// kill sends SIGTERM to a task and SIGKILL when it outlives the stop timeout.
func (m *Manager) kill(u *unit, task containerd.Task) {
	ctx := m.ctx
	if err := task.Kill(ctx, syscall.SIGTERM); err != nil && !errdefs.IsNotFound(err) {
		m.opts.Log.Warn("service: SIGTERM failed", "service", u.svc.Name, "err", err)
	}
	ch, err := task.Wait(ctx)
	if err == nil {
		select {
		case <-ch:
			return
		case <-time.After(m.opts.StopTimeout):
		case <-ctx.Done():
			return
		}
	}
	var opts []containerd.KillOpts
	if u.svc.HostPID {
		opts = append(opts, containerd.WithKillAll) // no PID namespace to take its children down
	}
	task.Kill(ctx, syscall.SIGKILL, opts...)
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

// takeRestart reports and clears a pending Restart request.
func (u *unit) takeRestart() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	r := u.restartRq
	u.restartRq = false
	if r {
		select {
		case <-u.restartCh:
		default:
		}
	}
	return r
}

func (u *unit) stopping() bool {
	select {
	case <-u.stopCh:
		return true
	default:
		return false
	}
}

// supervise runs one service until Stop: start, wait, restart.
func (m *Manager) supervise(u *unit) {
	log := m.opts.Log.With("service", u.svc.Name)
	for _, d := range u.svc.DependsOn {
		select {
		case <-m.units[d].firstRdy:
		case <-u.stopCh:
			u.set(func(s *Status) { s.State = StateStopped })
			return
		}
	}
	var notify *notifyListener
	if u.svc.Ready.Notify {
		var err error
		if notify, err = listenNotify(filepath.Join(m.opts.RunDir, u.svc.Name)); err != nil {
			log.Error("service: no sd_notify socket", "err", err)
			u.set(func(s *Status) { s.LastError = err.Error() })
		} else {
			defer notify.Close()
		}
	}
	var (
		delay  time.Duration
		starts int
		first  = true
	)
	for {
		started := time.Now()
		if starts > 0 {
			u.set(func(s *Status) { s.Restarts++ })
		}
		starts++
		exit, err := m.runOnce(u, notify, first)
		first = false
		ran := time.Since(started)
		requested := u.takeRestart()
		if u.stopping() || m.ctx.Err() != nil {
			u.set(func(s *Status) { s.State, s.Ready, s.PID = StateStopped, false, 0 })
			return
		}
		switch {
		case err != nil:
			log.Warn("service: start failed", "err", err)
			u.set(func(s *Status) { s.LastError = err.Error() })
		case exit != nil:
			log.Warn("service: exited", "code", exit.Code)
			u.set(func(s *Status) { s.LastExit = exit })
		}
		if !requested && err == nil && exit != nil && !u.svc.Restart.restarts(exit.Code) {
			u.set(func(s *Status) { s.State, s.Ready, s.PID = StateExited, false, 0 })
			select {
			case <-u.restartCh:
				u.takeRestart()
				delay = 0
				continue
			case <-u.stopCh:
				u.set(func(s *Status) { s.State = StateStopped })
				return
			}
		}
		if requested {
			delay = 0
		} else {
			delay = m.opts.Backoff.Next(delay, ran)
		}
		u.set(func(s *Status) { s.State, s.Ready, s.PID = StateBackoff, false, 0 })
		select {
		case <-time.After(delay):
		case <-u.restartCh:
			u.takeRestart()
			delay = 0
		case <-u.stopCh:
			u.set(func(s *Status) { s.State = StateStopped })
			return
		}
	}
}

// runOnce starts the service (or, on the Manager's first run, adopts its
// task left running by an earlier agent), waits for it to be ready and then
// for it to exit. It returns the exit, or an error when it could not start.
func (m *Manager) runOnce(u *unit, notify *notifyListener, first bool) (*Exit, error) {
	ctx := m.ctx
	if notify != nil {
		notify.drain()
	}
	task, taskIO, err := m.startTask(ctx, u, notify, first)
	if err != nil {
		return nil, err
	}
	u.mu.Lock()
	u.task = task
	stop := u.stopping()
	u.mu.Unlock()
	if stop {
		go m.kill(u, task)
	}
	u.set(func(s *Status) { s.State, s.PID, s.Ready = StateStarting, task.Pid(), false })

	exited := make(chan struct{})
	go m.awaitReady(u, task, notify, exited)
	exit, last := m.waitExit(ctx, u, task)
	close(exited)

	u.mu.Lock()
	u.task = nil
	u.mu.Unlock()
	if _, err := last.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
		m.opts.Log.Warn("service: delete task", "service", u.svc.Name, "err", err)
	}
	if last != task {
		// Reloaded after a containerd restart: Delete did not close our IO.
		closeIO(taskIO)
	}
	return exit, nil
}

// awaitReady marks u ready when its check passes, or kills the task when the
// check times out (the restart policy then takes over).
func (m *Manager) awaitReady(u *unit, task containerd.Task, notify *notifyListener, exited <-chan struct{}) {
	r := u.svc.Ready
	timeout := time.NewTimer(r.timeout())
	defer timeout.Stop()
	ready := func() {
		u.set(func(s *Status) {
			if s.State == StateStarting {
				s.State, s.Ready, s.LastError = StateRunning, true, ""
			}
		})
		u.rdyOnce.Do(func() { close(u.firstRdy) })
	}
	switch {
	case r.Notify && notify != nil:
		select {
		case <-notify.ready:
			ready()
			return
		case <-exited:
			return
		case <-timeout.C:
		}
	case r.TCP != 0:
		pid := task.Pid()
		if u.svc.HostNetwork {
			pid = 0
		}
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			ctx, cancel := context.WithTimeout(m.ctx, time.Second)
			err := dialTCP(ctx, pid, r.TCP)
			cancel()
			if err == nil {
				ready()
				return
			}
			select {
			case <-tick.C:
			case <-exited:
				return
			case <-timeout.C:
				goto timedOut
			}
		}
	default:
		ready()
		return
	}
timedOut:
	msg := fmt.Sprintf("not ready after %s (ready: %s); killed", r.timeout(), readyKind(r))
	m.opts.Log.Warn("service: "+msg, "service", u.svc.Name)
	u.set(func(s *Status) { s.LastError = msg })
	task.Kill(m.ctx, syscall.SIGKILL)
}

func readyKind(r Ready) string {
	if r.Notify {
		return "sd_notify READY=1"
	}
	return fmt.Sprintf("tcp port %d", r.TCP)
}

// waitExit waits for task to exit, riding out containerd restarts: the task
// keeps running under its shim, so after a lost connection it waits for
// containerd to serve again and waits on the task anew.
func (m *Manager) waitExit(ctx context.Context, u *unit, task containerd.Task) (*Exit, containerd.Task) {
	for {
		ch, err := task.Wait(ctx)
		if err == nil {
			st := <-ch
			var code uint32
			var at time.Time
			if code, at, err = st.Result(); err == nil {
				return &Exit{Code: code, At: at}, task
			}
		}
		if ctx.Err() != nil {
			return &Exit{Code: containerd.UnknownExitStatus, At: time.Now()}, task
		}
		m.opts.Log.Warn("service: lost containerd; waiting for it", "service", u.svc.Name, "err", err)
		m.awaitContainerd(ctx)
		c, err := m.client.LoadContainer(ctx, u.svc.Name)
		if err == nil {
			var t containerd.Task
			if t, err = c.Task(ctx, nil); err == nil {
				task = t
				u.mu.Lock()
				u.task = t
				u.mu.Unlock()
				continue
			}
		}
		if errdefs.IsNotFound(err) {
			// Gone while containerd was away: its exit status is lost.
			return &Exit{Code: containerd.UnknownExitStatus, At: time.Now()}, task
		}
	}
}

// awaitContainerd returns once containerd answers its health check again.
func (m *Manager) awaitContainerd(ctx context.Context) {
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ok, _ := m.client.IsServing(cctx)
		cancel()
		if ok {
			return
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
		}
		delay = min(delay*2, 2*time.Second)
	}
}

func closeIO(i cio.IO) {
	if i == nil {
		return
	}
	done := make(chan struct{})
	go func() { i.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		i.Cancel()
	}
	i.Close()
}

// startTask returns the service's running task: adopted from an earlier
// agent when first and the container is what the service asks for, or else
// new, in a container (re)made from the service's image.
func (m *Manager) startTask(ctx context.Context, u *unit, notify *notifyListener, first bool) (containerd.Task, cio.IO, error) {
	if err := m.ensureServing(ctx); err != nil {
		return nil, nil, err
	}
	name := u.svc.Name
	img, err := ImportImage(ctx, m.client, u.svc.Image, filepath.Join(m.opts.ImagesDir, name), m.opts.Snapshotter)
	if err != nil {
		return nil, nil, err
	}
	hash := specHash(u.svc, img.Target().Digest.String())
	streams := cio.WithStreams(nil, u.out, u.out)

	c, err := m.client.LoadContainer(ctx, name)
	switch {
	case err == nil:
		labels, _ := c.Labels(ctx)
		task, terr := c.Task(ctx, nil)
		if first && labels[labelSpec] == hash && terr == nil {
			if st, err := task.Status(ctx); err == nil && st.Status == containerd.Running {
				if t, err := c.Task(ctx, cio.NewAttach(streams)); err == nil {
					m.opts.Log.Info("service: adopted running task", "service", name, "pid", t.Pid())
					return t, nil, nil
				}
			}
		}
		if terr == nil {
			// A task left from before (or not what is wanted): end it.
			task.Kill(ctx, syscall.SIGKILL, containerd.WithKillAll)
			if ch, err := task.Wait(ctx); err == nil {
				select {
				case <-ch:
				case <-time.After(5 * time.Second):
				}
			}
			task.Delete(ctx, containerd.WithProcessKill)
		}
		if !first && labels[labelSpec] == hash {
			break // the container from this agent's earlier start: reuse
		}
		if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
			return nil, nil, fmt.Errorf("remove old container %s: %w", name, err)
		}
		c = nil
	case !errdefs.IsNotFound(err):
		return nil, nil, fmt.Errorf("load container %s: %w", name, err)
	}
	if c == nil {
		if c, err = m.client.NewContainer(ctx, name,
			containerd.WithImage(img),
			containerd.WithSnapshotter(m.opts.Snapshotter),
			containerd.WithNewSnapshot(name, img),
			containerd.WithNewSpec(specOpts(img, u.svc, notify)...),
			containerd.WithContainerLabels(map[string]string{labelSpec: hash}),
		); err != nil {
			return nil, nil, fmt.Errorf("create container %s: %w", name, err)
		}
	}
	var taskIO cio.IO
	creator := cio.NewCreator(streams)
	task, err := c.NewTask(ctx, func(id string) (cio.IO, error) {
		i, err := creator(id)
		taskIO = i
		return i, err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("create task %s: %w", name, err)
	}
	if err := task.Start(ctx); err != nil {
		task.Delete(ctx, containerd.WithProcessKill)
		return nil, nil, fmt.Errorf("start %s: %w", name, err)
	}
	// Delete closes the task's IO itself; runOnce closes it for tasks
	// reloaded after a containerd restart.
	return task, taskIO, nil
}

// ensureServing waits (bounded) for containerd to answer.
func (m *Manager) ensureServing(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	m.awaitContainerd(cctx)
	if cctx.Err() != nil && ctx.Err() == nil {
		return fmt.Errorf("containerd at %s does not answer (is it running?)", m.opts.Address)
	}
	return ctx.Err()
}

// labelSpec marks a container with the hash of the service and image it was
// made from, so an agent restart adopts it only while that still holds.
const labelSpec = "io.cairn.service.spec"

func specHash(s Service, imageDigest string) string {
	b, _ := json.Marshal(struct {
		S Service
		D string
	}{s, imageDigest})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// specOpts composes the OCI spec of a service's container from the image's
// config and the service's fields.
func specOpts(img containerd.Image, s Service, notify *notifyListener) []oci.SpecOpts {
	opts := []oci.SpecOpts{oci.WithDefaultSpec(), oci.WithDefaultUnixDevices}
	if len(s.Args) > 0 {
		opts = append(opts, oci.WithImageConfigArgs(img, s.Args))
	} else {
		opts = append(opts, oci.WithImageConfig(img))
	}
	opts = append(opts, oci.WithHostname(s.Name))
	var env []string
	for k, v := range s.Env {
		env = append(env, k+"="+v)
	}
	var mounts []specs.Mount
	if notify != nil {
		env = append(env, "NOTIFY_SOCKET="+notifyTarget+"/"+notifySock)
		mounts = append(mounts, specs.Mount{Type: "bind", Source: notify.dir, Destination: notifyTarget, Options: []string{"rbind", "rw"}})
	}
	sort.Strings(env)
	if len(env) > 0 {
		opts = append(opts, oci.WithEnv(env))
	}
	for _, mt := range s.Mounts {
		mounts = append(mounts, specMount(mt))
	}
	if len(mounts) > 0 {
		opts = append(opts, oci.WithMounts(mounts))
	}
	if len(s.Capabilities) > 0 {
		var caps []string
		for _, c := range s.Capabilities {
			caps = append(caps, capName(c))
		}
		opts = append(opts, oci.WithAddedCapabilities(caps))
	}
	if s.HostNetwork {
		opts = append(opts, oci.WithHostNamespace(specs.NetworkNamespace), oci.WithHostHostsFile, oci.WithHostResolvconf)
	}
	if s.HostPID {
		opts = append(opts, oci.WithHostNamespace(specs.PIDNamespace))
	}
	if s.Privileged {
		opts = append(opts, oci.WithPrivileged, oci.WithAllDevicesAllowed, oci.WithHostDevices)
	}
	return opts
}

// specMount turns a Mount into an OCI mount: bind by default, recursive
// unless the options say "bind".
func specMount(m Mount) specs.Mount {
	typ := m.Type
	if typ == "" {
		typ = "bind"
	}
	opts := slices.Clone(m.Options)
	if typ == "bind" && !slices.Contains(opts, "bind") && !slices.Contains(opts, "rbind") {
		opts = append([]string{"rbind"}, opts...)
	}
	return specs.Mount{Type: typ, Source: m.Source, Destination: m.Target, Options: opts}
}
