package services

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

// notifyTarget is where a service finds its sd_notify socket: the host
// directory holding it is bind-mounted here, and NOTIFY_SOCKET names it.
const (
	notifyTarget = "/run/cairn-notify"
	notifySock   = "notify.sock"
)

// notifyListener receives a service's sd_notify datagrams.
type notifyListener struct {
	conn  *net.UnixConn
	dir   string
	ready chan struct{} // gets a value for every READY=1
}

// listenNotify opens the sd_notify socket dir/notify.sock (dir is made;
// a stale socket replaced).
func listenNotify(dir string) (*notifyListener, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, notifySock)
	os.Remove(path)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("sd_notify socket %s: %w", path, err)
	}
	n := &notifyListener{conn: conn, dir: dir, ready: make(chan struct{}, 1)}
	go n.read()
	return n, nil
}

func (n *notifyListener) read() {
	buf := make([]byte, 4096)
	for {
		k, err := n.conn.Read(buf)
		if err != nil {
			return
		}
		if notifiesReady(buf[:k]) {
			select {
			case n.ready <- struct{}{}:
			default:
			}
		}
	}
}

// notifiesReady reports whether an sd_notify datagram (newline-separated
// VAR=value assignments) says READY=1.
func notifiesReady(msg []byte) bool {
	for _, line := range bytes.Split(msg, []byte("\n")) {
		if string(line) == daemon.SdNotifyReady {
			return true
		}
	}
	return false
}

// drain forgets a READY=1 left over from an earlier run.
func (n *notifyListener) drain() {
	select {
	case <-n.ready:
	default:
	}
}

func (n *notifyListener) Close() error {
	err := n.conn.Close()
	os.RemoveAll(n.dir)
	return err
}

// dialTCP is the readiness probe for ready.tcp: one connection attempt to
// port on the loopback of pid's network namespace (pid 0: the host's).
var dialTCP = func(ctx context.Context, pid uint32, port int) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	d := net.Dialer{Timeout: time.Second}
	if pid == 0 {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
		}
		return err
	}
	// The socket belongs to the network namespace of the thread that makes
	// it: make it on a thread moved into the service's namespace, which is
	// then discarded (never returned to the pool in a foreign namespace).
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			errc <- err
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter network namespace of pid %d: %w", pid, err)
			return
		}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
		}
		errc <- err
	}()
	return <-errc
}
