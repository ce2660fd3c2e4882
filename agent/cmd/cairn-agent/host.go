package main

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/agent/atomicfile"
	"github.com/cairn-edge/cairn/agent/boot/cmdline"
	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/agent/release"
	"github.com/cairn-edge/cairn/agent/services"
	"golang.org/x/sys/unix"
)

// resolvConf is where the network manager writes the resolver config; it
// is bind-mounted over the read-only /etc/resolv.conf.
const resolvConf = contract.ResolvConf

// bootSlot is the slot named on the kernel command line ("" if none).
func bootSlot() string {
	raw, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return ""
	}
	cl, err := cmdline.Parse(string(raw))
	if err != nil {
		return ""
	}
	slot, _ := cl.Slot()
	return string(slot)
}

// buildTime is the earliest the image can run: the later of the build's
// epoch, which the builder stamps on every file in the slot (a fixed date
// unless SOURCE_DATE_EPOCH says otherwise, for reproducible images), and
// the start of the node API's CA, made on a workstation's real clock
// before the image was built. The clock never starts earlier, and an NTP
// step goes at most ten years past it (agent/clock), the CA's life.
func buildTime() time.Time {
	var t time.Time
	if st, err := os.Stat(release.Path); err == nil {
		t = st.ModTime()
	}
	if ca, err := caStart(api.CAFile); err == nil && ca.After(t) {
		t = ca
	}
	return t
}

// caStart is the NotBefore of the PEM certificate in path.
func caStart(path string) (time.Time, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return time.Time{}, errors.New("no PEM certificate")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return time.Time{}, err
	}
	return c.NotBefore, nil
}

// bindResolvConf makes /etc/resolv.conf show the file the network manager
// writes under /run.
func bindResolvConf() error {
	if err := os.MkdirAll(filepath.Dir(resolvConf), 0o755); err != nil {
		return err
	}
	if _, err := os.Stat(resolvConf); os.IsNotExist(err) {
		if err := os.WriteFile(resolvConf, nil, 0o644); err != nil {
			return err
		}
	}
	var st unix.Stat_t
	var run unix.Stat_t
	if unix.Stat("/etc/resolv.conf", &st) == nil && unix.Stat(resolvConf, &run) == nil && st.Ino == run.Ino && st.Dev == run.Dev {
		return nil // bound by an earlier run of the agent
	}
	return unix.Mount(resolvConf, "/etc/resolv.conf", "", unix.MS_BIND, "")
}

// serviceAdapter serves the services manager to the API.
type serviceAdapter struct{ m *services.Manager }

var stateNames = map[services.State]api.State{
	services.StateWaiting:  api.StateStarting,
	services.StateStarting: api.StateStarting,
	services.StateRunning:  api.StateRunning,
	services.StateBackoff:  api.StateBackoff,
	services.StateExited:   api.StateFailed,
	services.StateStopped:  api.StateStopped,
}

func (a serviceAdapter) List(ctx context.Context) ([]api.Service, error) {
	if a.m == nil {
		return nil, nil
	}
	var out []api.Service
	for _, s := range a.m.List() {
		svc := api.Service{Name: s.Name, State: stateNames[s.State], Restarts: s.Restarts, PID: int(s.PID), Since: s.Since}
		if s.LastExit != nil {
			svc.LastExit = fmt.Sprintf("exit status %d at %s", s.LastExit.Code, s.LastExit.At.Format(time.RFC3339))
		}
		out = append(out, svc)
	}
	return out, nil
}

// known reports an unknown service the way the API wants it.
func (a serviceAdapter) known(name string) error {
	if a.m != nil {
		for _, s := range a.m.List() {
			if s.Name == name {
				return nil
			}
		}
	}
	return fmt.Errorf("%w: %q", api.ErrUnknownService, name)
}

func (a serviceAdapter) Restart(ctx context.Context, name string) error {
	if err := a.known(name); err != nil {
		return err
	}
	return a.m.Restart(name)
}

func (a serviceAdapter) Logs(ctx context.Context, name string, opt api.LogOptions) (io.ReadCloser, error) {
	if err := a.known(name); err != nil {
		return nil, err
	}
	rc, err := a.m.Logs(name, opt.Follow, opt.Tail)
	if err != nil {
		return nil, err
	}
	go func() { <-ctx.Done(); rc.Close() }()
	return rc, nil
}

// nodeIDPath keeps the node's random identity on CAIRN-DATA.
const nodeIDPath = contract.NodeIDFile

// defaultHostname is the host name of a node whose spec and node file name
// none: "cairn-" and six hex digits drawn once, on first boot, and kept on
// CAIRN-DATA, so every box of a fleet built from one image has its own,
// stable name (Kubernetes names the node after it).
func defaultHostname() (string, error) {
	if b, err := os.ReadFile(nodeIDPath); err == nil && len(strings.TrimSpace(string(b))) >= 6 {
		return "cairn-" + strings.TrimSpace(string(b))[:6], nil
	}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", err
	}
	s := hex.EncodeToString(id[:])
	if err := os.MkdirAll(filepath.Dir(nodeIDPath), 0o755); err != nil {
		return "", err
	}
	if err := atomicfile.WriteFile(nodeIDPath, []byte(s+"\n"), 0o644); err != nil {
		return "", err
	}
	return "cairn-" + s[:6], nil
}

// awaitEntropy blocks until the kernel's random number generator is
// seeded. A blocking getrandom(2) makes the kernel gather jitter entropy
// at once; without it, on a box with no hardware RNG (a VM without
// virtio-rng, under TCG) the generator can stay unseeded for minutes, and
// code that only polls for randomness (the DHCP client's transaction IDs)
// fails until then: the node would have no address.
func awaitEntropy(log *slog.Logger) {
	start := time.Now()
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		log.Warn("no randomness from the kernel", "err", err)
		return
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		log.Info("waited for the kernel's random number generator", "took", took.Round(time.Millisecond))
	}
}
