package api

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-edge/cairn/agent/api/crl"
	"github.com/cairn-edge/cairn/agent/api/role"
)

// Server serves the node API. Make one with NewServer.
type Server struct {
	node     Node
	services Services
	kube     Kubernetes // nil on a node without Kubernetes
	health   Health     // nil: status and metrics have no health section
	upgrades Upgrades   // nil: the image has no update section
	crl      *crl.Store // nil: no revocation list (tests)
	clock    Clock      // nil: no /v1/clock
	log      *slog.Logger
	metrics  *requestMetrics
	conns    connCounters
	handler  http.Handler

	// The constants of the same names; tests shorten them.
	maxConns         int
	handshakeTimeout time.Duration
	failureLogEvery  time.Duration
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets the logger for requests and errors (slog.Default() otherwise).
func WithLogger(l *slog.Logger) Option {
	return func(s *Server) { s.log = l }
}

// WithKubernetes serves the bundled Kubernetes' state in status and its
// kubeconfig.
func WithKubernetes(k Kubernetes) Option {
	return func(s *Server) { s.kube = k }
}

// WithHealth serves the node's health model in status and metrics.
func WithHealth(h Health) Option {
	return func(s *Server) { s.health = h }
}

// route is one endpoint and the least role that may call it (see
// agent/api/role; a route without one is open to nobody).
type route struct {
	method, path string
	role         role.Role
	handle       func(*Server, http.ResponseWriter, *http.Request)
}

var routes = []route{
	{"GET", "/v1/status", role.Monitor, (*Server).status},
	{"GET", "/v1/services", role.Monitor, (*Server).listServices},
	{"POST", "/v1/services/{name}/restart", role.Operator, (*Server).restart},
	{"GET", "/v1/services/{name}/logs", role.Operator, (*Server).logs},
	{"POST", "/v1/reboot", role.Operator, (*Server).reboot},
	{"POST", "/v1/shutdown", role.Admin, (*Server).shutdown},
	// The cluster's system:masters credentials, and new node credentials.
	{"GET", "/v1/kubeconfig", role.Admin, (*Server).kubeconfig},
	{"GET", "/v1/join-kubeconfig", role.Admin, (*Server).joinKubeconfig},
	{"POST", "/v1/upgrade", role.Operator, (*Server).startUpgrade},
	{"GET", "/v1/upgrade", role.Operator, (*Server).upgrade},
	{"POST", "/v1/crl", role.Admin, (*Server).installCRL},
	{"GET", "/metrics", role.Monitor, (*Server).metricsHandler},
	{"GET", "/v1/clock", role.Monitor, (*Server).clockStatus},
	// Setting the clock sets the floor every certificate is checked against.
	{"POST", "/v1/clock", role.Admin, (*Server).setClock},
}

// NewServer returns a Server answering from node and services.
func NewServer(node Node, services Services, opts ...Option) *Server {
	s := &Server{node: node, services: services, log: slog.Default(), metrics: newRequestMetrics(),
		maxConns: maxConns, handshakeTimeout: handshakeTimeout, failureLogEvery: failureLogEvery}
	for _, o := range opts {
		o(s)
	}
	mux := http.NewServeMux()
	// paths knows every path whatever the method, to tell 405 from 404.
	paths := http.NewServeMux()
	methods := map[string][]string{} // path → its methods
	for _, rt := range routes {
		mux.HandleFunc(rt.method+" "+rt.path, func(w http.ResponseWriter, r *http.Request) {
			if s.allow(w, r, rt) {
				rt.handle(s, w, r)
			}
		})
		if methods[rt.path] == nil {
			path := rt.path
			paths.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
				allow := strings.Join(methods[path], ", ")
				w.Header().Set("Allow", allow)
				writeError(w, http.StatusMethodNotAllowed, "%s %s: use %s", r.Method, r.URL.Path, strings.Join(methods[path], " or "))
			})
		}
		methods[rt.path] = append(methods[rt.path], rt.method)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if h, pattern := paths.Handler(r); pattern != "" {
			h.ServeHTTP(w, r)
			return
		}
		writeError(w, http.StatusNotFound, "no endpoint %s %s (endpoints: /v1/status, /v1/services, /v1/services/NAME/{restart,logs}, /v1/reboot, /v1/shutdown, /v1/upgrade, /v1/kubeconfig, /v1/join-kubeconfig, /v1/crl, /v1/clock, /metrics)", r.Method, r.URL.Path)
	})
	s.handler = s.observe(s.recover(s.authenticate(mux)))
	return s
}

// Handler returns the API's HTTP handler, with authentication, panic
// recovery, request logging and metrics. Serve it only over the TLS
// configuration ServerTLS makes.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves the API over TLS on ln until ctx ends, then closes open
// requests (following log streams end) and returns nil. It holds at most
// 256 connections, closing the oldest that has sent no request to make
// room; a connection gets 5 s for its handshake and request header, and
// failed handshakes are logged as one summary every 30 s at most.
func (s *Server) Serve(ctx context.Context, ln net.Listener, tlsConf *tls.Config) error {
	failLog := newFailureLog(s.log, s.failureLogEvery, &s.conns)
	defer failLog.stop()
	lim := newLimiter(ln, s.maxConns, &s.conns, failLog)
	if s.crl != nil {
		// A revoked client does not get past the handshake.
		tlsConf = tlsConf.Clone()
		prev := tlsConf.VerifyConnection
		tlsConf.VerifyConnection = func(cs tls.ConnectionState) error {
			if prev != nil {
				if err := prev(cs); err != nil {
					return err
				}
			}
			return s.crl.VerifyConnection(cs)
		}
	}
	srv := &http.Server{
		Handler:   s.handler,
		TLSConfig: tlsConf,
		// Also the handshake's deadline (net/http's tlsHandshakeTimeout).
		ReadHeaderTimeout: s.handshakeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    64 << 10,
		ConnState:         lim.connState,
		// Request contexts end with ctx, so log streams stop on shutdown.
		BaseContext: func(net.Listener) context.Context { return ctx },
		// TLS handshake failures (a client without a valid certificate)
		// land here.
		ErrorLog: log.New(errorLog{s.log, failLog}, "", 0),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
	}()
	err := srv.ServeTLS(lim, "", "")
	if errors.Is(err, http.ErrServerClosed) {
		<-done
		return nil
	}
	return err
}

// recover turns a panic in a handler into a 500 and a log line.
func (s *Server) recover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("api: handler panicked", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if rec, ok := w.(*recorder); ok && rec.status != 0 {
				panic(http.ErrAbortHandler) // too late for an error reply: drop the connection
			}
			writeError(w, http.StatusInternalServerError, "internal error (the node logged it)")
		}()
		next.ServeHTTP(w, r)
	})
}

// recorder remembers the status written, for logs and metrics.
type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// observe logs each request and counts it in the metrics.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		defer func() {
			took := time.Since(start)
			if rec.status == 0 {
				rec.status = http.StatusOK
			}
			route := r.Pattern
			if route == "" || route == "/" {
				route = "other"
			}
			s.metrics.observe(route, rec.status, took)
			client := ""
			if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
				client = r.TLS.PeerCertificates[0].Subject.CommonName
			}
			level := slog.LevelInfo
			if rec.status >= 500 {
				level = slog.LevelError
			}
			s.log.Log(r.Context(), level, "api request", "method", r.Method, "path", r.URL.Path, "status", rec.status, "took", took.Round(time.Microsecond), "client", client, "remote", r.RemoteAddr)
		}()
		next.ServeHTTP(rec, r)
	})
}

// writeJSON replies v as JSON with status code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// ErrorReply is the body of every error reply.
type ErrorReply struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, format string, args ...any) {
	writeJSON(w, code, ErrorReply{Error: fmt.Sprintf(format, args...)})
}

// query checks that r has no query parameters besides allowed.
func query(w http.ResponseWriter, r *http.Request, allowed ...string) bool {
	for k := range r.URL.Query() {
		if !slices.Contains(allowed, k) {
			if len(allowed) == 0 {
				writeError(w, http.StatusBadRequest, "unknown parameter %q: %s %s takes none", k, r.Method, r.URL.Path)
			} else {
				writeError(w, http.StatusBadRequest, "unknown parameter %q: %s %s takes %s", k, r.Method, r.URL.Path, strings.Join(allowed, ", "))
			}
			return false
		}
	}
	return true
}

// serviceName is what a service name may look like.
var serviceName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// name returns the {name} path value, or replies 400.
func (s *Server) name(w http.ResponseWriter, r *http.Request) (string, bool) {
	name := r.PathValue("name")
	if !serviceName.MatchString(name) {
		writeError(w, http.StatusBadRequest, "service name %q is not valid (letters, digits, '.', '_', '-'; at most 64)", name)
		return "", false
	}
	return name, true
}

// serviceError replies to an error from Services: 404 naming the known
// services for an unknown one, 500 otherwise.
func (s *Server) serviceError(w http.ResponseWriter, r *http.Request, name string, err error) {
	if !errors.Is(err, ErrUnknownService) {
		writeError(w, http.StatusInternalServerError, "service %q: %v", name, err)
		return
	}
	var names []string
	if list, err := s.services.List(r.Context()); err == nil {
		for _, svc := range list {
			names = append(names, svc.Name)
		}
	}
	writeError(w, http.StatusNotFound, "unknown service %q (services: %s)", name, strings.Join(names, ", "))
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	if !query(w, r) {
		return
	}
	st, err := s.gather(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// gather asks Node, Services and, where set, Kubernetes and Health for the
// status.
func (s *Server) gather(ctx context.Context) (*Status, error) {
	ns, err := s.node.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("node status: %w", err)
	}
	svcs, err := s.services.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("services: %w", err)
	}
	if svcs == nil {
		svcs = []Service{}
	}
	if ns.Addresses == nil {
		ns.Addresses = []Address{}
	}
	st := &Status{NodeStatus: ns, Services: svcs}
	if s.kube != nil {
		ks := s.kube.Status(ctx)
		st.Kubernetes = &ks
	}
	if s.health != nil {
		h := s.health.Snapshot()
		st.Health = &h
	}
	if s.upgrades != nil {
		up := s.upgrades.Progress()
		st.Upgrade = &up
	}
	return st, nil
}

// kubeconfig serves an administrator's kubeconfig; ?server= is the API
// server's URL as the client reaches it (default: the host the client
// used for this API, port 6443).
func (s *Server) kubeconfig(w http.ResponseWriter, r *http.Request) {
	if !query(w, r, "server") {
		return
	}
	server, ok := s.kubeServer(w, r)
	if !ok {
		return
	}
	s.writeKubeconfig(w, "kubeconfig", func() ([]byte, error) { return s.kube.Kubeconfig(server) })
}

// nodeName is what a Kubernetes node name may look like (a DNS-1123
// subdomain).
var nodeName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

// joinKubeconfig serves a kubeconfig with new credentials for the node
// ?node= names, for the API server at ?server= (default as kubeconfig's).
func (s *Server) joinKubeconfig(w http.ResponseWriter, r *http.Request) {
	if !query(w, r, "node", "server") {
		return
	}
	node := r.URL.Query().Get("node")
	if len(node) > 253 || !nodeName.MatchString(node) {
		writeError(w, http.StatusBadRequest, "node %q is not a Kubernetes node name: lowercase letters, digits, '-' and '.', e.g. ?node=edge-2", node)
		return
	}
	server, ok := s.kubeServer(w, r)
	if !ok {
		return
	}
	s.writeKubeconfig(w, "join kubeconfig", func() ([]byte, error) { return s.kube.JoinKubeconfig(node, server) })
}

// kubeServer is the API server URL of ?server=, by default the host the
// client used for this API with port 6443; it replies 404 on a node
// without Kubernetes and 400 for a bad URL.
func (s *Server) kubeServer(w http.ResponseWriter, r *http.Request) (string, bool) {
	if s.kube == nil {
		writeError(w, http.StatusNotFound, "this node runs no Kubernetes (its image spec has no kubernetes section)")
		return "", false
	}
	server := r.URL.Query().Get("server")
	if server == "" {
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		server = "https://" + net.JoinHostPort(host, "6443")
	}
	if u, err := url.Parse(server); err != nil || u.Scheme != "https" || u.Host == "" {
		writeError(w, http.StatusBadRequest, "server %q is not an https://HOST:PORT URL", server)
		return "", false
	}
	return server, true
}

// writeKubeconfig replies with the kubeconfig mk returns: 409 on a
// node that holds no cluster credentials, 503 for other errors.
func (s *Server) writeKubeconfig(w http.ResponseWriter, what string, mk func() ([]byte, error)) {
	data, err := mk()
	switch {
	case errors.Is(err, ErrNoClusterAdmin):
		writeError(w, http.StatusConflict, "%s: %v", what, err)
		return
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "%s: %v (Kubernetes may still be starting)", what, err)
		return
	}
	w.Header().Set("Content-Type", "application/yaml")
	w.Write(data)
}

func (s *Server) listServices(w http.ResponseWriter, r *http.Request) {
	if !query(w, r) {
		return
	}
	svcs, err := s.services.List(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, "services: %v", err)
		return
	}
	if svcs == nil {
		svcs = []Service{}
	}
	writeJSON(w, http.StatusOK, svcs)
}

// ActionReply is the body of a 202 reply to restart, reboot and shutdown.
type ActionReply struct {
	Status  string `json:"status"`
	Service string `json:"service,omitempty"`
}

func (s *Server) restart(w http.ResponseWriter, r *http.Request) {
	name, ok := s.name(w, r)
	if !ok || !query(w, r) {
		return
	}
	if err := s.services.Restart(r.Context(), name); err != nil {
		s.serviceError(w, r, name, err)
		return
	}
	s.log.Info("api: service restart requested", "service", name)
	writeJSON(w, http.StatusAccepted, ActionReply{Status: "restarting", Service: name})
}

// maxTail bounds ?tail=.
const maxTail = 100000

func (s *Server) logs(w http.ResponseWriter, r *http.Request) {
	name, ok := s.name(w, r)
	if !ok || !query(w, r, "follow", "tail") {
		return
	}
	var opts LogOptions
	q := r.URL.Query()
	if v := q.Get("follow"); v != "" {
		f, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "follow=%q is not a boolean (use follow=1)", v)
			return
		}
		opts.Follow = f
	}
	if v := q.Get("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > maxTail {
			writeError(w, http.StatusBadRequest, "tail=%q is not a line count from 0 to %d", v, maxTail)
			return
		}
		opts.Tail = n
	}
	rc, err := s.services.Logs(r.Context(), name, opts)
	if err != nil {
		s.serviceError(w, r, name, err)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	rc2 := http.NewResponseController(w)
	if opts.Follow {
		rc2.Flush() // the client sees the stream open before the first line
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := rc.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return // the client went away
			}
			if opts.Follow {
				rc2.Flush()
			}
		}
		if err == io.EOF {
			return
		}
		if err != nil {
			s.log.Warn("api: log stream failed", "service", name, "err", err)
			return
		}
	}
}

func (s *Server) reboot(w http.ResponseWriter, r *http.Request) {
	s.power(w, r, "reboot", "rebooting", s.node.Reboot)
}

func (s *Server) shutdown(w http.ResponseWriter, r *http.Request) {
	s.power(w, r, "shutdown", "shutting down", s.node.Shutdown)
}

func (s *Server) power(w http.ResponseWriter, r *http.Request, what, status string, do func(context.Context) error) {
	if !query(w, r) {
		return
	}
	s.log.Warn("api: "+what+" requested", "remote", r.RemoteAddr)
	if err := do(r.Context()); err != nil {
		writeError(w, http.StatusInternalServerError, "%s: %v", what, err)
		return
	}
	writeJSON(w, http.StatusAccepted, ActionReply{Status: status})
}

func (s *Server) metricsHandler(w http.ResponseWriter, r *http.Request) {
	if !query(w, r) {
		return
	}
	st, err := s.gather(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	writeMetrics(w, st, s.metrics, &s.conns)
}
