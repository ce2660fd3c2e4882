package api

import (
	"bufio"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cairn-edge/cairn/agent/health"
)

// latencyBuckets are the upper bounds, in seconds, of the request latency
// histogram.
var latencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// requestMetrics counts API requests by route and status, and their latency by route.
type requestMetrics struct {
	mu        sync.Mutex
	count     map[routeCode]uint64
	latencies map[string]*histogram
}

type routeCode struct {
	route string
	code  int
}

type histogram struct {
	buckets []uint64 // cumulative counts are derived when written
	count   uint64
	sum     float64
}

func newRequestMetrics() *requestMetrics {
	return &requestMetrics{count: map[routeCode]uint64{}, latencies: map[string]*histogram{}}
}

func (m *requestMetrics) observe(route string, code int, took time.Duration) {
	sec := took.Seconds()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.count[routeCode{route, code}]++
	h := m.latencies[route]
	if h == nil {
		h = &histogram{buckets: make([]uint64, len(latencyBuckets))}
		m.latencies[route] = h
	}
	if i, _ := slices.BinarySearch(latencyBuckets, sec); i < len(latencyBuckets) {
		h.buckets[i]++
	}
	h.count++
	h.sum += sec
}

// writeMetrics writes st, m and c in the Prometheus text exposition format
// (version 0.0.4).
func writeMetrics(w io.Writer, st *Status, m *requestMetrics, c *connCounters) error {
	p := promWriter{w: bufio.NewWriter(w)}
	p.family("cairn_node_info", "gauge", "Identity of the node and the image it runs; always 1.")
	p.sample("cairn_node_info", 1, "hostname", st.Hostname, "image", st.Image, "version", st.Version, "board", st.Board, "arch", st.Arch, "kernel", st.Kernel, "slot", st.Slot)
	p.family("cairn_node_uptime_seconds", "gauge", "Time since the kernel started.")
	p.sample("cairn_node_uptime_seconds", st.UptimeSeconds)
	p.family("cairn_node_memory_total_bytes", "gauge", "Total usable memory (MemTotal).")
	p.sample("cairn_node_memory_total_bytes", float64(st.Memory.TotalBytes))
	p.family("cairn_node_memory_available_bytes", "gauge", "Memory available without swapping (MemAvailable).")
	p.sample("cairn_node_memory_available_bytes", float64(st.Memory.AvailableBytes))
	p.family("cairn_node_memory_free_bytes", "gauge", "Unused memory, the kernel's reserve included (MemFree).")
	p.sample("cairn_node_memory_free_bytes", float64(st.Memory.FreeBytes))
	p.family("cairn_node_memory_min_free_bytes", "gauge", "What the kernel keeps free for itself (vm.min_free_kbytes).")
	p.sample("cairn_node_memory_min_free_bytes", float64(st.Memory.MinFreeBytes))
	p.family("cairn_node_memory_kernel_bytes", "gauge", "Memory the kernel uses itself, by use.")
	for _, k := range []struct {
		use string
		n   uint64
	}{{"slab", st.Memory.SlabBytes}, {"kernel_stacks", st.Memory.KernelStackBytes}, {"page_tables", st.Memory.PageTablesBytes}, {"percpu", st.Memory.PercpuBytes}, {"modules", st.Memory.ModulesBytes}} {
		p.sample("cairn_node_memory_kernel_bytes", float64(k.n), "use", k.use)
	}
	p.family("cairn_node_load", "gauge", "Load average over the window (1m, 5m, 15m).")
	p.sample("cairn_node_load", st.Load.One, "window", "1m")
	p.sample("cairn_node_load", st.Load.Five, "window", "5m")
	p.sample("cairn_node_load", st.Load.Fifteen, "window", "15m")

	p.family("cairn_service_up", "gauge", "1 if the service is running.")
	for _, svc := range st.Services {
		p.sample("cairn_service_up", b2f(svc.State == StateRunning), "service", svc.Name)
	}
	p.family("cairn_service_state", "gauge", "1 for the state the service is in, 0 for the others.")
	for _, svc := range st.Services {
		for _, state := range States {
			p.sample("cairn_service_state", b2f(svc.State == state), "service", svc.Name, "state", string(state))
		}
	}
	p.family("cairn_service_restarts_total", "counter", "Restarts of the service since boot.")
	for _, svc := range st.Services {
		p.sample("cairn_service_restarts_total", float64(svc.Restarts), "service", svc.Name)
	}

	if h := st.Health; h != nil {
		writeHealth(p, h)
	}
	if u := st.Upgrade; u != nil {
		writeUpgrade(p, u)
	}

	p.family("cairn_api_connections", "gauge", "Connections the node API holds (at most 256).")
	p.sample("cairn_api_connections", float64(c.open.Load()))
	p.family("cairn_api_tls_handshake_failures_total", "counter", "TLS handshakes that failed or timed out: clients without a valid certificate, scanners.")
	p.sample("cairn_api_tls_handshake_failures_total", float64(c.handshakeFailures.Load()))
	p.family("cairn_api_connections_dropped_total", "counter", "Connections closed at the connection cap: the oldest without a request evicted, or a new one refused.")
	p.sample("cairn_api_connections_dropped_total", float64(c.evicted.Load()), "reason", "evicted")
	p.sample("cairn_api_connections_dropped_total", float64(c.refused.Load()), "reason", "refused")

	m.mu.Lock()
	defer m.mu.Unlock()
	keys := make([]routeCode, 0, len(m.count))
	for k := range m.count {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b routeCode) int {
		if c := strings.Compare(a.route, b.route); c != 0 {
			return c
		}
		return a.code - b.code
	})
	p.family("cairn_api_requests_total", "counter", "Node API requests by route and status code.")
	for _, k := range keys {
		p.sample("cairn_api_requests_total", float64(m.count[k]), "route", k.route, "code", strconv.Itoa(k.code))
	}
	routes := make([]string, 0, len(m.latencies))
	for r := range m.latencies {
		routes = append(routes, r)
	}
	slices.Sort(routes)
	p.family("cairn_api_request_duration_seconds", "histogram", "Node API request latency by route (log streams count until they end).")
	for _, r := range routes {
		h := m.latencies[r]
		var cum uint64
		for i, le := range latencyBuckets {
			cum += h.buckets[i]
			p.sample("cairn_api_request_duration_seconds_bucket", float64(cum), "route", r, "le", formatFloat(le))
		}
		p.sample("cairn_api_request_duration_seconds_bucket", float64(h.count), "route", r, "le", "+Inf")
		p.sample("cairn_api_request_duration_seconds_sum", h.sum, "route", r)
		p.sample("cairn_api_request_duration_seconds_count", float64(h.count), "route", r)
	}
	return p.w.Flush()
}

// writeHealth writes the health model's state: the node's and each part's,
// one sample per state as for services, so a query can select either.
func writeHealth(p promWriter, h *health.Snapshot) {
	p.family("cairn_node_healthy", "gauge", "1 if the node's health is ok (every part of it ok).")
	p.sample("cairn_node_healthy", b2f(h.State == health.OK))
	p.family("cairn_node_health", "gauge", "1 for the state the node's health is in (the worst of its parts), 0 for the others.")
	for _, state := range health.States {
		p.sample("cairn_node_health", b2f(h.State == state), "state", string(state))
	}
	p.family("cairn_health", "gauge", "1 for the state the part of the node's health is in, 0 for the others.")
	for _, part := range h.Parts {
		for _, state := range health.States {
			p.sample("cairn_health", b2f(part.State == state), "part", part.Name, "state", string(state))
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// promWriter writes the text exposition format.
type promWriter struct{ w *bufio.Writer }

func (p promWriter) family(name, typ, help string) {
	p.w.WriteString("# HELP " + name + " " + help + "\n# TYPE " + name + " " + typ + "\n")
}

// sample writes one sample; labels are name, value pairs.
func (p promWriter) sample(name string, v float64, labels ...string) {
	p.w.WriteString(name)
	if len(labels) > 0 {
		p.w.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				p.w.WriteByte(',')
			}
			p.w.WriteString(labels[i] + `="` + labelEscaper.Replace(labels[i+1]) + `"`)
		}
		p.w.WriteByte('}')
	}
	p.w.WriteString(" " + formatFloat(v) + "\n")
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return strconv.FormatInt(int64(v), 10) // byte counts read better whole
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// writeUpgrade writes the current or last upgrade attempt.
func writeUpgrade(p promWriter, u *Upgrade) {
	p.family("cairn_upgrade_running", "gauge", "1 while an upgrade is being installed, before its reboot into the trial.")
	p.sample("cairn_upgrade_running", b2f(u.Running))
	p.family("cairn_upgrade_phase", "gauge", "1 for the phase the current or last upgrade attempt is in.")
	if u.Phase != "" {
		p.sample("cairn_upgrade_phase", 1, "phase", u.Phase, "version", u.Version)
	}
	p.family("cairn_upgrade_done_bytes", "gauge", "Bytes of the slot image written or verified in the running phase.")
	p.sample("cairn_upgrade_done_bytes", float64(u.DoneBytes))
	p.family("cairn_upgrade_total_bytes", "gauge", "Bytes of the slot image the running phase works through.")
	p.sample("cairn_upgrade_total_bytes", float64(u.TotalBytes))
	p.family("cairn_upgrade_fetched_bytes_total", "counter", "Bytes received from registries since the agent started.")
	p.sample("cairn_upgrade_fetched_bytes_total", float64(u.FetchedBytes))
}
