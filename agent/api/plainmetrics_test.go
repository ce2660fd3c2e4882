package api

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPlainMetrics serves /metrics in plain HTTP on a listener bound to lo,
// and nothing else.
func TestPlainMetrics(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ln, err := ListenDevice(ctx, "lo", 0)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var bound string
	dev.Control(func(fd uintptr) { bound, _ = getDevice(int(fd)) })
	if bound != "lo" {
		t.Errorf("listener bound to device %q, want lo", bound)
	}
	srv := NewServer(&fakeNode{}, &fakeServices{}, WithHealth(fakeHealth()), WithLogger(discard()))
	done := make(chan error, 1)
	go func() { done <- srv.ServeMetrics(ctx, ln) }()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	base := "http://127.0.0.1:" + port
	tests := []struct {
		method, path string
		want         int
		body         string
	}{
		{"GET", "/metrics", 200, `cairn_node_info{hostname="edge-1"`},
		{"GET", "/v1/status", 404, "only /metrics is served here"},
		{"POST", "/v1/reboot", 404, "only /metrics"},
		{"POST", "/metrics", 405, "use GET"},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, base+tt.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.want || !strings.Contains(string(b), tt.body) {
			t.Errorf("%s %s = %d %.200s, want %d with %q", tt.method, tt.path, resp.StatusCode, b, tt.want, tt.body)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("ServeMetrics = %v", err)
	}
	if _, err := ListenDevice(context.Background(), "nosuchlink0", 0); err == nil || !strings.Contains(err.Error(), "nosuchlink0") {
		t.Errorf("an unknown interface: %v, want an error naming it", err)
	}
}

// getDevice reads SO_BINDTODEVICE back.
func getDevice(fd int) (string, error) {
	return unix.GetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE)
}
