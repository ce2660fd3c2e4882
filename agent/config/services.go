package config

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/pkg/cap"
)

// Service describes one system service. It is embedded in the image spec and
// in the agent's configuration.
type Service struct {
	// Name names the service, its container and its logs: lowercase
	// letters, digits and dashes.
	Name string `yaml:"name"`
	// Image is the service's OCI image reference at build time. At run time
	// the image comes from the OCI layout /usr/share/cairn/images/<name> in
	// the slot, and Image names it in containerd's image store.
	Image string `yaml:"image"`
	// Args, when set, replace the image's command (CMD); the image's
	// entrypoint stays.
	Args []string `yaml:"args,omitempty"`
	// Env is added to the image's environment.
	Env map[string]string `yaml:"env,omitempty"`
	// Mounts are added to the container (bind mounts by default).
	Mounts []Mount `yaml:"mounts,omitempty"`
	// Capabilities are added to the default set, e.g. CAP_NET_ADMIN or
	// NET_ADMIN.
	Capabilities []string `yaml:"capabilities,omitempty"`
	// HostNetwork runs the service in the host's network namespace (with
	// the host's /etc/hosts and /etc/resolv.conf).
	HostNetwork bool `yaml:"hostNetwork,omitempty"`
	// HostPID runs the service in the host's PID namespace.
	HostPID bool `yaml:"hostPID,omitempty"`
	// Privileged gives the service every capability and every host device,
	// writable /sys and cgroup fs, no seccomp filter.
	Privileged bool `yaml:"privileged,omitempty"`
	// Restart says when the service is restarted after it exits:
	// always (the default), on-failure (non-zero exit) or never.
	Restart RestartPolicy `yaml:"restart,omitempty"`
	// DependsOn names services that must be ready before this one starts.
	DependsOn []string `yaml:"dependsOn,omitempty"`
	// Ready says how to tell that the service is ready; without it, a
	// service is ready once its process runs.
	Ready Ready `yaml:"ready,omitempty"`
}

// Mount is a mount added to a service's container.
type Mount struct {
	// Type is the file system type; "bind" (the default), "tmpfs", …
	Type string `yaml:"type,omitempty"`
	// Source is the host path of a bind mount, or the device/name.
	Source string `yaml:"source"`
	// Target is the absolute path in the container.
	Target string `yaml:"target"`
	// Options are mount options, e.g. [ro] or [rbind, rw]. A bind mount is
	// recursive (rbind) unless the options say bind.
	Options []string `yaml:"options,omitempty"`
}

// Ready is a service's readiness check: at most one of Notify and TCP.
type Ready struct {
	// Notify waits for READY=1 on the sd_notify socket the service finds
	// in $NOTIFY_SOCKET.
	Notify bool `yaml:"notify,omitempty"`
	// TCP waits until a connection to this port on the service's loopback
	// (the host's, with hostNetwork) succeeds.
	TCP int `yaml:"tcp,omitempty"`
	// Timeout bounds the wait for readiness after a start (default 60s).
	Timeout time.Duration `yaml:"timeout,omitempty"`
}

// RestartPolicy says when an exited service is restarted.
type RestartPolicy string

// Restart policies.
const (
	RestartAlways    RestartPolicy = "always"
	RestartOnFailure RestartPolicy = "on-failure"
	RestartNever     RestartPolicy = "never"
)

// DefaultReadyTimeout bounds the wait for readiness when Ready.Timeout is 0.
const DefaultReadyTimeout = 60 * time.Second

// Wait is how long the agent waits for readiness: Timeout, or
// DefaultReadyTimeout when that is 0.
func (r Ready) Wait() time.Duration {
	if r.Timeout > 0 {
		return r.Timeout
	}
	return DefaultReadyTimeout
}

var (
	serviceNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	envNameRE     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// ValidateServices checks services on their own and together: names, restart
// policies, readiness checks, mounts, capabilities, and that every
// dependency exists and none forms a cycle. It reports every problem found.
func ValidateServices(svcs []Service) error {
	var errs []error
	seen := map[string]bool{}
	for i, s := range svcs {
		where := fmt.Sprintf("service %q", s.Name)
		if s.Name == "" {
			where = fmt.Sprintf("service #%d", i+1)
		}
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...)))
		}
		switch {
		case s.Name == "":
			bad("name is empty (give it a name: lowercase letters, digits, dashes)")
		case !serviceNameRE.MatchString(s.Name):
			bad("name must be lowercase letters, digits and dashes, at most 63, starting and ending with a letter or digit")
		case seen[s.Name]:
			bad("name used twice (service names must be unique)")
		}
		seen[s.Name] = true
		if s.Image == "" {
			bad("image is empty (set image to an OCI reference)")
		}
		switch s.Restart {
		case "", RestartAlways, RestartOnFailure, RestartNever:
		default:
			bad("restart %q is not a policy (use always, on-failure or never)", s.Restart)
		}
		if s.Ready.Notify && s.Ready.TCP != 0 {
			bad("ready has both notify and tcp (choose one)")
		}
		if s.Ready.TCP < 0 || s.Ready.TCP > 65535 {
			bad("ready.tcp %d is not a port (1-65535)", s.Ready.TCP)
		}
		if s.Ready.Timeout < 0 {
			bad("ready.timeout %s is negative", s.Ready.Timeout)
		}
		for k := range s.Env {
			if !envNameRE.MatchString(k) {
				bad("env %q is not a variable name (letters, digits, underscores)", k)
			}
		}
		for j, m := range s.Mounts {
			if !strings.HasPrefix(m.Target, "/") {
				bad("mounts[%d].target %q must be an absolute path", j, m.Target)
			}
			if (m.Type == "" || m.Type == "bind") && !strings.HasPrefix(m.Source, "/") {
				bad("mounts[%d].source %q must be an absolute host path for a bind mount", j, m.Source)
			}
		}
		known := cap.Known()
		for _, c := range s.Capabilities {
			if !slices.Contains(known, CapabilityName(c)) {
				bad("capability %q is unknown (e.g. CAP_NET_ADMIN)", c)
			}
		}
		deps := map[string]bool{}
		for _, d := range s.DependsOn {
			if d == s.Name {
				bad("depends on itself")
			} else if deps[d] {
				bad("dependsOn names %q twice", d)
			}
			deps[d] = true
		}
	}
	for _, s := range svcs {
		for _, d := range s.DependsOn {
			if !seen[d] {
				errs = append(errs, fmt.Errorf("service %q: depends on unknown service %q (known: %s)", s.Name, d, strings.Join(serviceNames(svcs), ", ")))
			}
		}
	}
	if len(errs) == 0 {
		if _, err := ServiceOrder(svcs); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// CapabilityName returns a capability's name with the CAP_ prefix, upper case.
func CapabilityName(c string) string {
	c = strings.ToUpper(c)
	if !strings.HasPrefix(c, "CAP_") {
		c = "CAP_" + c
	}
	return c
}

func serviceNames(svcs []Service) []string {
	var n []string
	for _, s := range svcs {
		n = append(n, s.Name)
	}
	return n
}

// ServiceOrder returns the services' names in an order that starts every service
// after its dependencies; among services free to start, the order given
// stays. A cycle is an error that names it.
func ServiceOrder(svcs []Service) ([]string, error) {
	byName := map[string]Service{}
	for _, s := range svcs {
		byName[s.Name] = s
	}
	const (
		unvisited = iota
		visiting
		done
	)
	state := map[string]int{}
	var order, path []string
	var visit func(name string) error
	visit = func(name string) error {
		switch state[name] {
		case done:
			return nil
		case visiting:
			i := slices.Index(path, name)
			cycle := append(slices.Clone(path[i:]), name)
			return fmt.Errorf("services depend on each other in a cycle: %s (remove one of these dependsOn)", strings.Join(cycle, " -> "))
		}
		s, ok := byName[name]
		if !ok {
			return fmt.Errorf("unknown service %q", name)
		}
		state[name] = visiting
		path = append(path, name)
		for _, d := range s.DependsOn {
			if err := visit(d); err != nil {
				return err
			}
		}
		path = path[:len(path)-1]
		state[name] = done
		order = append(order, name)
		return nil
	}
	for _, s := range svcs {
		if err := visit(s.Name); err != nil {
			return nil, err
		}
	}
	return order, nil
}
