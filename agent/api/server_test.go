package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// raw sends a request with the env's valid client and returns status and body.
func (e *env) raw(t *testing.T, method, path string) (int, string) {
	t.Helper()
	return send(t, e.client, method, path)
}

func TestEndpoints(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	c := e.client

	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !sameJSON(t, st.NodeStatus, testNodeStatus) {
		t.Errorf("status = %+v, want %+v", st.NodeStatus, testNodeStatus)
	}
	if got := st.Uptime(); got != 3723500*time.Millisecond {
		t.Errorf("Uptime() = %v", got)
	}

	svcs, err := c.Services(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := e.svcs.List(ctx)
	if !sameJSON(t, svcs, want) || !sameJSON(t, st.Services, want) {
		t.Errorf("services = %+v, want %+v", svcs, want)
	}
	if !svcs[0].Since.Equal(since) {
		t.Errorf("since = %v, want %v", svcs[0].Since, since)
	}

	if err := c.Restart(ctx, "kubelet"); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(e.svcs.restarted, []string{"kubelet"}) {
		t.Errorf("restarted = %v", e.svcs.restarted)
	}

	rc, err := c.Logs(ctx, "containerd", LogOptions{Tail: 2})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if got, want := string(b), "containerd: two\ncontainerd: three\n"; got != want {
		t.Errorf("logs = %q, want %q", got, want)
	}

	if err := c.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if e.node.reboots != 1 || e.node.shutdowns != 1 {
		t.Errorf("reboots %d shutdowns %d, want 1 1", e.node.reboots, e.node.shutdowns)
	}

	m, err := c.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkExposition(t, string(m))
	for _, want := range []string{
		`cairn_node_info{hostname="edge-1",image="minimal",version="0.1.0",board="qemu-x86_64",arch="amd64",kernel="6.1.0-56-amd64",slot="a"} 1`,
		"cairn_node_uptime_seconds 3723.5",
		"cairn_node_memory_total_bytes 2147483648",
		"cairn_node_memory_min_free_bytes 4017152",
		`cairn_node_memory_kernel_bytes{use="slab"} 40960000`,
		`cairn_node_load{window="15m"} 1`,
		`cairn_service_up{service="containerd"} 1`,
		`cairn_service_state{service="kubelet",state="backoff"} 1`,
		`cairn_service_state{service="kubelet",state="running"} 0`,
		`cairn_service_restarts_total{service="kubelet"} 4`,
		`cairn_api_requests_total{route="GET /v1/status",code="200"} 1`,
		`cairn_api_requests_total{route="POST /v1/services/{name}/restart",code="202"} 1`,
		`cairn_api_request_duration_seconds_bucket{route="GET /v1/services",le="+Inf"} 1`,
		`cairn_api_request_duration_seconds_count{route="POST /v1/reboot"} 1`,
	} {
		if !strings.Contains(string(m), want+"\n") {
			t.Errorf("metrics lack %s", want)
		}
	}
	if log := e.log.String(); !strings.Contains(log, `path=/v1/status status=200`) || !strings.Contains(log, "client=cairn-admin") {
		t.Errorf("request log:\n%s", log)
	}
}

// sameJSON compares a and b by their JSON encoding.
func sameJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// checkExposition checks the Prometheus text format line by line.
func checkExposition(t *testing.T, text string) {
	t.Helper()
	sample := regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*",?)*\})? ([-+]?[0-9.eE+-]+|\+Inf|-Inf|NaN)$`)
	comment := regexp.MustCompile(`^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$`)
	if !strings.HasSuffix(text, "\n") {
		t.Error("exposition does not end with a newline")
	}
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if !sample.MatchString(line) && !comment.MatchString(line) {
			t.Errorf("line %d is not exposition format: %q", i+1, line)
		}
	}
}

func TestBadRequests(t *testing.T) {
	e := start(t)
	tests := []struct {
		method, path string
		code         int
		want         string
	}{
		{"POST", "/v1/services/nginx/restart", 404, `unknown service \"nginx\" (services: containerd, kubelet)`},
		{"GET", "/v1/services/nginx/logs", 404, `unknown service \"nginx\"`},
		{"GET", "/v1/services/bad%20name/logs", 400, `service name \"bad name\" is not valid`},
		{"GET", "/v1/services/containerd/logs?follow=maybe", 400, `follow=\"maybe\" is not a boolean`},
		{"GET", "/v1/services/containerd/logs?tail=-1", 400, `tail=\"-1\" is not a line count`},
		{"GET", "/v1/services/containerd/logs?lines=5", 400, `unknown parameter \"lines\"`},
		{"GET", "/v1/status?verbose=1", 400, `unknown parameter \"verbose\": GET /v1/status takes none`},
		{"GET", "/v1/reboot", 405, "GET /v1/reboot: use POST"},
		{"DELETE", "/v1/services/containerd/restart", 405, "use POST"},
		{"GET", "/v2/status", 404, "no endpoint GET /v2/status"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			code, body := e.raw(t, tt.method, tt.path)
			if code != tt.code || !strings.Contains(body, tt.want) {
				t.Errorf("got %d %s, want %d with %q", code, body, tt.code, tt.want)
			}
			var reply ErrorReply
			if err := json.Unmarshal([]byte(body), &reply); err != nil || reply.Error == "" {
				t.Errorf("body %q is not {\"error\": …}", body)
			}
		})
	}
	if e.node.reboots != 0 || len(e.svcs.restarted) != 0 {
		t.Error("a refused request acted")
	}
	// The Client reports them as *Error.
	err := e.client.Restart(context.Background(), "nginx")
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || !strings.Contains(apiErr.Message, `unknown service "nginx"`) {
		t.Errorf("Restart(nginx) = %v", err)
	}
}

func TestPanicRecovered(t *testing.T) {
	e := start(t)
	e.svcs.panicList = true
	code, body := e.raw(t, "GET", "/v1/services")
	if code != 500 || !strings.Contains(body, "internal error") {
		t.Errorf("got %d %s", code, body)
	}
	if !strings.Contains(e.log.String(), "list exploded") {
		t.Errorf("the panic was not logged:\n%s", e.log)
	}
	e.svcs.panicList = false
	if _, err := e.client.Services(context.Background()); err != nil {
		t.Errorf("after a panic: %v", err)
	}
}

func TestNodeErrors(t *testing.T) {
	e := start(t)
	e.node.err = errors.New("power button glued")
	code, body := e.raw(t, "POST", "/v1/reboot")
	if code != 500 || !strings.Contains(body, "reboot: power button glued") {
		t.Errorf("got %d %s", code, body)
	}
	code, body = e.raw(t, "GET", "/v1/status")
	if code != 500 || !strings.Contains(body, "node status: power button glued") {
		t.Errorf("got %d %s", code, body)
	}
}

// TestFollowLogs reads lines as the service writes them, then ends the stream.
func TestFollowLogs(t *testing.T) {
	e := start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rc, err := e.client.Logs(ctx, "kubelet", LogOptions{Follow: true, Tail: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(rc)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func() string {
		t.Helper()
		select {
		case l := <-lines:
			return l
		case <-time.After(5 * time.Second):
			t.Fatal("no line within 5 s: the stream is not flushed")
			return ""
		}
	}
	if got := next(); got != "kubelet: three" {
		t.Errorf("first line = %q", got)
	}
	for _, l := range []string{"kubelet: started", "kubelet: ready"} {
		e.svcs.follow <- l + "\n"
		if got := next(); got != l {
			t.Errorf("line = %q, want %q", got, l)
		}
	}
	cancel()
	select {
	case _, ok := <-lines:
		if ok {
			t.Error("a line after cancel")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end after cancel")
	}
}

// TestFollowEndsOnShutdown: stopping the server ends open log streams.
func TestFollowEndsOnShutdown(t *testing.T) {
	e := start(t)
	rc, err := e.client.Logs(context.Background(), "kubelet", LogOptions{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, rc); close(done) }()
	stopped := make(chan error)
	go func() { stopped <- e.stop() }()
	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return with a log stream open")
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Error("the log stream outlived the server")
	}
}
