package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/agent/api/crl"
	"github.com/cairn-edge/cairn/agent/health"
	"github.com/cairn-edge/cairn/builder/pki"
)

type cliNode struct{}

func (cliNode) Status(context.Context) (api.NodeStatus, error) {
	return api.NodeStatus{Hostname: "edge-1", Image: "minimal", Version: "0.1.0", Board: "qemu-x86_64", Arch: "amd64", Kernel: "6.1.0", Slot: "a", UptimeSeconds: 3723,
		Memory: api.Memory{TotalBytes: 2 << 30, AvailableBytes: 1536 << 20}, Load: api.Load{One: 0.25, Five: 0.5, Fifteen: 1},
		Addresses: []api.Address{{Interface: "eth0", Address: "10.0.2.15/24"}}}, nil
}
func (cliNode) Reboot(context.Context) error   { return nil }
func (cliNode) Shutdown(context.Context) error { return nil }

type cliServices struct{}

func (cliServices) List(context.Context) ([]api.Service, error) {
	return []api.Service{{Name: "containerd", State: api.StateRunning, PID: 123, Since: time.Now().Add(-2 * time.Hour)}, {Name: "kubelet", State: api.StateBackoff, Restarts: 3, LastExit: "exit status 1"}}, nil
}
func (cliServices) Restart(_ context.Context, name string) error {
	if name != "containerd" && name != "kubelet" {
		return api.ErrUnknownService
	}
	return nil
}
func (cliServices) Logs(_ context.Context, name string, _ api.LogOptions) (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader(name + ": hello\n")), nil
}

// nodeFixture serves a fake node with the PKI in dir and writes node.yaml.
func nodeFixture(t *testing.T, dir string, opts ...api.Option) (config, addr string) {
	p, err := pki.Ensure(filepath.Join(dir, "pki"), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	id, err := p.IssueNode("edge-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	conf, err := api.ServerTLS(p.CA.CertPEM, id.CertPEM, id.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// As on a node: nothing baked, a list pushed later kept in the state.
	crls, err := crl.Open(p.CA.Cert, filepath.Join(dir, "no-baked-crl.pem"), filepath.Join(dir, "state", "crl.pem"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go api.NewServer(cliNode{}, cliServices{}, append(opts, api.WithCRL(crls))...).Serve(ctx, ln, conf)
	config = filepath.Join(dir, "node.yaml")
	if err := pki.WriteClientConfig(config, "https://"+ln.Addr().String(), "edge-1", p); err != nil {
		t.Fatal(err)
	}
	return config, ln.Addr().String()
}

func TestNodeCommand(t *testing.T) {
	dir := t.TempDir()
	config, addr := nodeFixture(t, dir)
	otherConfig, _ := nodeFixture(t, t.TempDir())
	os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("server: http://x\n"), 0o600)
	good, _ := pki.LoadClientConfig(config)
	other, _ := pki.LoadClientConfig(otherConfig)
	good.Cert, good.Key = other.Cert, other.Key
	b, _ := good.Marshal()
	os.WriteFile(filepath.Join(dir, "stranger.yaml"), b, 0o600)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	tests := []struct {
		args    []string
		want    string
		wantErr string
	}{
		{args: []string{"--config", config, "status"}, want: "memory     512 MiB used of 2.0 GiB (1.5 GiB available)"},
		{args: []string{"--config", config, "status"}, want: "kubelet     backoff  3         -    -           exit status 1"},
		{args: []string{"status", "--json", "--config", config}, want: `"hostname": "edge-1"`},
		{args: []string{"--config", config, "services"}, want: "containerd  running  0         123  2h0m0s ago"},
		{args: []string{"--config", config, "restart", "kubelet"}, want: "kubelet: restarting"},
		{args: []string{"--config", config, "restart", "nginx", "--json"}, wantErr: `node answered 404 Not Found: unknown service "nginx" (services: containerd, kubelet)`},
		{args: []string{"--config", config, "logs", "kubelet", "--tail", "5"}, want: "kubelet: hello"},
		{args: []string{"--config", config, "reboot"}, want: addr + ": rebooting"},
		{args: []string{"--config", config, "shutdown", "--json"}, want: `"status": "shutting down"`},
		{args: []string{"--config", config, "metrics"}, want: `cairn_service_restarts_total{service="kubelet"} 3`},
		{args: []string{"--config", config}, wantErr: "flag: help requested"},
		{args: []string{"--config", config, "restart"}, wantErr: "needs a service name"},
		{args: []string{"--config", config, "status", "-f"}, wantErr: "-f and --tail apply to logs only"},
		{args: []string{"--config", config, "logs", "x", "--json"}, wantErr: "--json does not apply to logs"},
		{args: []string{"--config", config, "upgrade"}, wantErr: "needs the artifact's reference"},
		{args: []string{"--config", config, "upgrade", "reg/edge:2"}, wantErr: "this node cannot be upgraded: its image spec has no update section"},
		{args: []string{"--config", config, "status", "--force"}, wantErr: "--force applies to upgrade only"},
		{args: []string{"--config", config, "frobnicate"}, wantErr: `unknown node command "frobnicate"`},
		{args: []string{"status"}, wantErr: "no client config: pass --config FILE"},
		{args: []string{"--config", filepath.Join(dir, "bad.yaml"), "status"}, wantErr: `is not https://HOST[:PORT]`},
		{args: []string{"--config", otherConfig, "--server", addr, "status"}, wantErr: "presents a certificate from another CA"},
		{args: []string{"--config", filepath.Join(dir, "stranger.yaml"), "status"}, wantErr: "refused this client's certificate (tls: unknown certificate authority): use the node.yaml written next to the image this node runs"},
		{args: []string{"--config", config, "--server", closed, "status"}, wantErr: "cannot reach the node at https://" + closed},
		// The node asked for is edge-2; edge-1 answers at that address.
		{args: []string{"--config", config, "--name", "edge-2", "status"}, wantErr: `the node at https://` + addr + ` is not the node asked for: it is "edge-1", not edge-2`},
		{args: []string{"--config", config, "--name", "Edge 2", "status"}, wantErr: "--name: node name"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			checkNodeCommand(t, tt.args, tt.want, tt.wantErr)
		})
	}
}

// checkNodeCommand runs `cairn node ARGS` and checks that it fails with an
// error containing wantErr or, when wantErr is empty, prints want.
func checkNodeCommand(t *testing.T, args []string, want, wantErr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), append([]string{"node"}, args...), &out, &errOut)
	t.Logf("out:\n%s\nerr: %v", out.String(), err)
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("err = %v, want %q", err, wantErr)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), want) {
		t.Errorf("output lacks %q", want)
	}
}

// TestStatusHealthLine: a node that reports its health gets one line for
// it; one that does not (an older agent) gets none.
func TestStatusHealthLine(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 5, 0, 0, time.UTC)
	for _, tt := range []struct {
		name   string
		health *health.Snapshot
		want   string
	}{
		{"older agent", nil, ""},
		{"ok", &health.Snapshot{State: health.OK, Since: now.Add(-90 * time.Second)}, "health     ok for 1m30s\n"},
		{"degraded", &health.Snapshot{State: health.Degraded, Reason: "disk: CAIRN-DATA is nearly full", Since: now.Add(-time.Minute)}, "health     degraded for 1m0s: disk: CAIRN-DATA is nearly full\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			st := &api.Status{Health: tt.health}
			printStatus(&b, st, now)
			got := b.String()
			if tt.want == "" && strings.Contains(got, "health") || tt.want != "" && !strings.Contains(got, tt.want) {
				t.Errorf("status:\n%s\nwant %q", got, tt.want)
			}
			if !strings.Contains(got, "addresses  -\n") {
				t.Errorf("status:\n%s\nthe other lines changed", got)
			}
		})
	}
}
