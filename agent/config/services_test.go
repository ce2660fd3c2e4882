package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func svc(name string, deps ...string) Service {
	return Service{Name: name, Image: "example.org/" + name + ":1", DependsOn: deps}
}

func TestValidateServices(t *testing.T) {
	for _, tt := range []struct {
		name string
		svcs []Service
		want []string // substrings of the error; none: valid
	}{
		{"ok", []Service{svc("a"), svc("b", "a")}, nil},
		{"empty", nil, nil},
		{"duplicate", []Service{svc("a"), svc("a")}, []string{`service "a": name used twice`}},
		{"unknown dep", []Service{svc("a", "nope")}, []string{`service "a": depends on unknown service "nope"`}},
		{"self", []Service{svc("a", "a")}, []string{"depends on itself"}},
		{"cycle", []Service{svc("a", "c"), svc("b", "a"), svc("c", "b")}, []string{"cycle: a -> c -> b -> a"}},
		{"bad name", []Service{svc("A_b")}, []string{"lowercase letters"}},
		{"no name", []Service{{Image: "x"}}, []string{"service #1: name is empty"}},
		{"no image", []Service{{Name: "a"}}, []string{"image is empty"}},
		{"bad restart", []Service{{Name: "a", Image: "x", Restart: "sometimes"}}, []string{`restart "sometimes" is not a policy (use always, on-failure or never)`}},
		{"good restarts", []Service{{Name: "a", Image: "x", Restart: RestartNever}, {Name: "b", Image: "x", Restart: RestartOnFailure}}, nil},
		{"two checks", []Service{{Name: "a", Image: "x", Ready: Ready{Notify: true, TCP: 80}}}, []string{"both notify and tcp"}},
		{"bad port", []Service{{Name: "a", Image: "x", Ready: Ready{TCP: 70000}}}, []string{"not a port"}},
		{"relative mount", []Service{{Name: "a", Image: "x", Mounts: []Mount{{Source: "data", Target: "/data"}}}}, []string{"absolute host path"}},
		{"tmpfs mount", []Service{{Name: "a", Image: "x", Mounts: []Mount{{Type: "tmpfs", Source: "tmpfs", Target: "/tmp"}}}}, nil},
		{"caps", []Service{{Name: "a", Image: "x", Capabilities: []string{"CAP_NET_ADMIN", "sys_time"}}}, nil},
		{"bad cap", []Service{{Name: "a", Image: "x", Capabilities: []string{"CAP_FLY"}}}, []string{`capability "CAP_FLY" is unknown`}},
		{"bad env", []Service{{Name: "a", Image: "x", Env: map[string]string{"A-B": "1"}}}, []string{`env "A-B"`}},
		{"several", []Service{{Name: "a"}, svc("b", "zz")}, []string{"image is empty", `unknown service "zz"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateServices(tt.svcs)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate: nil, want error with %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate: %v\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

func TestServiceOrder(t *testing.T) {
	for _, tt := range []struct {
		name string
		svcs []Service
		want []string
	}{
		{"independent keep order", []Service{svc("b"), svc("a"), svc("c")}, []string{"b", "a", "c"}},
		{"chain reversed", []Service{svc("c", "b"), svc("b", "a"), svc("a")}, []string{"a", "b", "c"}},
		{"diamond", []Service{svc("d", "b", "c"), svc("b", "a"), svc("c", "a"), svc("a")}, []string{"a", "b", "c", "d"}},
		{"kube after network and clock", []Service{svc("kube", "net", "ntp"), svc("ntp", "net"), svc("net")}, []string{"net", "ntp", "kube"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ServiceOrder(tt.svcs)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Order = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestServiceYAML(t *testing.T) {
	const doc = `
name: ntpd
image: ghcr.io/cairn-edge/ntpd:1.0
args: [-d]
env: {TZ: UTC}
mounts:
  - {source: /var/lib/ntpd, target: /var/lib/ntpd, options: [rw]}
capabilities: [CAP_SYS_TIME]
hostNetwork: true
restart: on-failure
dependsOn: [network]
ready: {notify: true, timeout: 30s}
`
	var got Service
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := Service{
		Name: "ntpd", Image: "ghcr.io/cairn-edge/ntpd:1.0", Args: []string{"-d"}, Env: map[string]string{"TZ": "UTC"},
		Mounts:       []Mount{{Source: "/var/lib/ntpd", Target: "/var/lib/ntpd", Options: []string{"rw"}}},
		Capabilities: []string{"CAP_SYS_TIME"}, HostNetwork: true, Restart: RestartOnFailure,
		DependsOn: []string{"network"}, Ready: Ready{Notify: true, Timeout: 30 * time.Second},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoded %+v\nwant %+v", got, want)
	}
}
