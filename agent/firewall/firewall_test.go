package firewall

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent/config"
)

// Rules every policy has, before the ports.
var baseRules = []string{
	`iifname "lo" accept comment "loopback"`,
	`ct state established,related accept comment "replies"`,
	`ct state invalid drop comment "invalid"`,
	`meta l4proto icmp accept comment "ICMP"`,
	`meta l4proto ipv6-icmp accept comment "ICMPv6"`,
	`udp sport 67 udp dport 68 accept comment "DHCPv4 replies"`,
	`ip6 saddr fe80::/10 udp sport 547 udp dport 546 accept comment "DHCPv6 replies"`,
}

var podRules = []string{
	`iifname "cni0" accept comment "pods"`,
	`ct status dnat accept comment "Services and host ports"`,
	`meta l4proto { tcp, udp } th dport 30000-32767 accept comment "NodePorts"`,
}

func concat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// rules returns the rule lines of the input chain in a rendered ruleset.
func rules(t *testing.T, ruleset string) []string {
	t.Helper()
	_, chain, ok := strings.Cut(ruleset, "type filter hook input priority filter; policy drop;\n")
	if !ok {
		t.Fatalf("no input base chain with policy drop in:\n%s", ruleset)
	}
	chain, _, ok = strings.Cut(chain, "\t}\n}\n")
	if !ok {
		t.Fatalf("input chain not closed in:\n%s", ruleset)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(chain), "\n") {
		out = append(out, strings.TrimSpace(l))
	}
	return out
}

func TestRender(t *testing.T) {
	for _, tt := range []struct {
		name string
		p    Policy
		want []string
	}{
		{
			name: "node API only",
			p:    Policy{APIPort: 7443},
			want: concat(baseRules, []string{`tcp dport 7443 accept comment "node API"`}),
		},
		{
			name: "kubernetes server",
			p:    Policy{APIPort: 7443, KubeAPI: true, Pods: true},
			want: concat(baseRules, []string{`tcp dport 7443 accept comment "node API"`, `tcp dport 6443 accept comment "Kubernetes API"`}, podRules),
		},
		{
			name: "kubernetes agent",
			p:    Policy{APIPort: 7443, Kubelet: true, Pods: true},
			want: concat(baseRules, []string{`tcp dport 7443 accept comment "node API"`, `tcp dport 10250 accept comment "kubelet"`}, podRules),
		},
		{
			name: "plain metrics",
			p:    Policy{APIPort: 7443, Metrics: &config.PlainMetrics{Interface: "eth0"}},
			want: concat(baseRules, []string{`tcp dport 7443 accept comment "node API"`, `iifname "eth0" tcp dport 9100 accept comment "plain metrics"`}),
		},
		{
			name: "allow entries",
			p: Policy{APIPort: 9443, Allow: []config.FirewallAllow{
				{Port: 8080, Proto: "tcp", From: "10.0.0.0/8"},
				{Port: 53, Proto: "udp"},
				{Port: 22, From: "192.168.1.5"},
				{Port: 9100, From: "fd00::/8"},
				{Port: 123, Proto: "udp", From: "10.1.2.3/16"}, // host bits dropped
			}},
			want: concat(baseRules, []string{
				`tcp dport 9443 accept comment "node API"`,
				`ip saddr 10.0.0.0/8 tcp dport 8080 accept comment "firewall.allow[0]"`,
				`udp dport 53 accept comment "firewall.allow[1]"`,
				`ip saddr 192.168.1.5/32 tcp dport 22 accept comment "firewall.allow[2]"`,
				`ip6 saddr fd00::/8 tcp dport 9100 accept comment "firewall.allow[3]"`,
				`ip saddr 10.1.0.0/16 udp dport 123 accept comment "firewall.allow[4]"`,
			}),
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := Render(tt.p)
			if !strings.Contains(out, "table inet cairn\ndelete table inet cairn\ntable inet cairn {\n") {
				t.Errorf("ruleset does not replace table inet cairn atomically:\n%s", out)
			}
			if strings.Contains(out, "flush ruleset") || strings.Contains(out, "chain forward") {
				t.Errorf("ruleset touches more than its own input chain:\n%s", out)
			}
			got := rules(t, out)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("rules:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestRenderDeterministic(t *testing.T) {
	p := Policy{APIPort: 7443, KubeAPI: true, Pods: true, Allow: []config.FirewallAllow{{Port: 1}, {Port: 2, Proto: "udp"}}}
	if a, b := Render(p), Render(p); a != b {
		t.Errorf("Render differs between calls:\n%s\n%s", a, b)
	}
}

func TestPolicyFor(t *testing.T) {
	allow := []config.FirewallAllow{{Port: 8080}}
	for _, tt := range []struct {
		name string
		c    config.Config
		want Policy
	}{
		{"no kubernetes", config.Config{Firewall: config.Firewall{Allow: allow}}, Policy{APIPort: 7443, Allow: allow}},
		{"server by default", config.Config{Kubernetes: &config.Kubernetes{}}, Policy{APIPort: 7443, KubeAPI: true, Pods: true}},
		{"plain metrics", config.Config{API: config.API{Metrics: &config.PlainMetrics{Interface: "eth0", Port: 9200}}}, Policy{APIPort: 7443, Metrics: &config.PlainMetrics{Interface: "eth0", Port: 9200}}},
		{"server", config.Config{Kubernetes: &config.Kubernetes{Mode: config.ModeServer}}, Policy{APIPort: 7443, KubeAPI: true, Pods: true}},
		{"agent", config.Config{Kubernetes: &config.Kubernetes{Mode: config.ModeAgent, Server: "https://10.0.0.1:6443"}}, Policy{APIPort: 7443, Kubelet: true, Pods: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := PolicyFor(tt.c, 7443)
			if (got.Metrics == nil) != (tt.want.Metrics == nil) || got.Metrics != nil && *got.Metrics != *tt.want.Metrics {
				t.Errorf("PolicyFor Metrics = %+v, want %+v", got.Metrics, tt.want.Metrics)
			}
			if got.APIPort != tt.want.APIPort || got.KubeAPI != tt.want.KubeAPI || got.Kubelet != tt.want.Kubelet || got.Pods != tt.want.Pods || len(got.Allow) != len(tt.want.Allow) {
				t.Errorf("PolicyFor = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// fakeNft swaps the nft seam for the test's duration.
func fakeNft(t *testing.T, f func(script string) ([]byte, error)) {
	t.Helper()
	old := nft
	nft = func(_ context.Context, script string) ([]byte, error) { return f(script) }
	t.Cleanup(func() { nft = old })
}

func TestApply(t *testing.T) {
	var got string
	fakeNft(t, func(s string) ([]byte, error) { got = s; return nil, nil })
	p := Policy{APIPort: 7443}
	if err := Apply(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	if got != Render(p) {
		t.Errorf("nft got:\n%s\nwant Render's:\n%s", got, Render(p))
	}
}

func TestApplyErrors(t *testing.T) {
	for _, tt := range []struct {
		name    string
		out     string
		err     error
		wantErr string
	}{
		{"nft message", "/dev/stdin:5:3-9: Error: syntax error\n", errors.New("exit status 1"), "nft -f: exit status 1: /dev/stdin:5:3-9: Error: syntax error"},
		{"no output", "", errors.New("signal: killed"), "nft -f: signal: killed"},
		{"no nft", "", ErrNoNft, "/usr/sbin/nft is missing"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fakeNft(t, func(string) ([]byte, error) { return []byte(tt.out), tt.err })
			err := Apply(context.Background(), Policy{})
			if err == nil || err.Error() != tt.wantErr && !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Apply() = %v, want %q", err, tt.wantErr)
			}
			if tt.err == ErrNoNft && !errors.Is(err, ErrNoNft) {
				t.Errorf("Apply() = %v, want errors.Is ErrNoNft", err)
			}
		})
	}
}

func TestSummary(t *testing.T) {
	for _, tt := range []struct {
		p    Policy
		want string
	}{
		{Policy{APIPort: 7443}, "admits node API 7443/tcp"},
		{Policy{APIPort: 7443, Metrics: &config.PlainMetrics{Interface: "eth0"}}, "admits node API 7443/tcp, metrics 9100/tcp on eth0"},
		{Policy{APIPort: 7443, KubeAPI: true, Pods: true}, "admits node API 7443/tcp, Kubernetes API 6443/tcp, pods, Services, NodePorts 30000-32767"},
		{Policy{APIPort: 7443, Kubelet: true, Allow: []config.FirewallAllow{{Port: 53, Proto: "udp", From: "10.0.0.0/8"}}}, "admits node API 7443/tcp, kubelet 10250/tcp, 53/udp from 10.0.0.0/8"},
	} {
		if got := tt.p.Summary(); got != tt.want {
			t.Errorf("Summary() = %q, want %q", got, tt.want)
		}
	}
}
