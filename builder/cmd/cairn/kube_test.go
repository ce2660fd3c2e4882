package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent/api"
)

// cliKube is a node's Kubernetes: a server, or an agent that joined one.
type cliKube struct{ agent bool }

func (k cliKube) Status(context.Context) api.KubernetesStatus {
	if k.agent {
		return api.KubernetesStatus{Mode: "agent", Server: "https://10.0.0.1:6443", Phase: "ready", Version: "v1.36.3", NodeName: "edge-2", NodeReady: true}
	}
	return api.KubernetesStatus{Mode: "server", Phase: "ready", Version: "v1.36.3", NodeName: "edge-1", NodeReady: true}
}

func (k cliKube) Kubeconfig(server string) ([]byte, error) {
	if k.agent {
		return nil, fmt.Errorf("%w: it joined https://10.0.0.1:6443", api.ErrNoClusterAdmin)
	}
	return []byte("kind: Config # admin for " + server + "\n"), nil
}

func (k cliKube) JoinKubeconfig(node, server string) ([]byte, error) {
	if k.agent {
		return nil, fmt.Errorf("%w: mint join credentials on a server node", api.ErrNoClusterAdmin)
	}
	return []byte("kind: Config # node " + node + " for " + server + "\n"), nil
}

func TestNodeKubernetesCommands(t *testing.T) {
	server, addr := nodeFixture(t, t.TempDir(), api.WithKubernetes(cliKube{}))
	agent, _ := nodeFixture(t, t.TempDir(), api.WithKubernetes(cliKube{agent: true}))
	host, _, _ := strings.Cut(addr, ":")
	tests := []struct {
		name    string
		args    []string
		want    string
		wantErr string
	}{
		{"admin kubeconfig", []string{"--config", server, "kubeconfig", "--kube-server", "https://edge-1:6443"}, "admin for https://edge-1:6443", ""},
		{"join kubeconfig", []string{"--config", server, "join-kubeconfig", "--node", "edge-2", "--kube-server", "https://10.0.0.1:6443"}, "node edge-2 for https://10.0.0.1:6443", ""},
		{"join kubeconfig, default server", []string{"--config", server, "join-kubeconfig", "--node", "edge-2"}, "node edge-2 for https://" + host + ":6443", ""},
		{"join kubeconfig without --node", []string{"--config", server, "join-kubeconfig"}, "", "needs --node NAME"},
		{"--node elsewhere", []string{"--config", server, "status", "--node", "edge-2"}, "", "--node applies to join-kubeconfig only"},
		{"bad node name", []string{"--config", server, "join-kubeconfig", "--node", "Edge_2"}, "", `node "Edge_2" is not a Kubernetes node name`},
		{"bad server", []string{"--config", server, "join-kubeconfig", "--node", "edge-2", "--kube-server", "http://x"}, "", "is not an https://HOST:PORT URL"},
		{"json", []string{"--config", server, "join-kubeconfig", "--node", "edge-2", "--json"}, "", "--json does not apply to join-kubeconfig"},
		{"agent: status", []string{"--config", agent, "status"}, "joined      https://10.0.0.1:6443", ""},
		{"agent: status mode", []string{"--config", agent, "status"}, "kubernetes  agent v1.36.3, ready (edge-2 Ready)", ""},
		{"agent: no admin kubeconfig", []string{"--config", agent, "kubeconfig"}, "", "409 Conflict: kubeconfig: this node runs Kubernetes in agent mode and holds no cluster credentials: it joined https://10.0.0.1:6443"},
		{"agent: no join kubeconfig", []string{"--config", agent, "join-kubeconfig", "--node", "edge-3"}, "", "409 Conflict: join kubeconfig: this node runs Kubernetes in agent mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkNodeCommand(t, tt.args, tt.want, tt.wantErr) })
	}
}
