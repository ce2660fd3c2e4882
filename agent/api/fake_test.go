package api

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/agent/health"
	"github.com/cairn-edge/cairn/builder/pki"
)

// fakeNode is a Node that records power requests.
type fakeNode struct {
	mu                 sync.Mutex
	reboots, shutdowns int
	err                error
}

var testNodeStatus = NodeStatus{
	Hostname: "edge-1", Image: "minimal", Version: "0.1.0", Board: "qemu-x86_64", Arch: "amd64",
	Kernel: "6.1.0-56-amd64", Slot: "a", UptimeSeconds: 3723.5,
	Memory: Memory{TotalBytes: 2 << 30, AvailableBytes: 1536 << 20, FreeBytes: 512 << 20,
		SlabBytes: 40000 << 10, SlabUnreclaimableBytes: 15000 << 10, KernelStackBytes: 1500 << 10, PageTablesBytes: 2000 << 10,
		PercpuBytes: 300 << 10, ModulesBytes: 65536 + 163840, MinFreeBytes: 3923 << 10, TransparentHugepages: "never"},
	Load:      Load{One: 0.25, Five: 0.5, Fifteen: 1},
	Addresses: []Address{{Interface: "eth0", Address: "10.0.2.15/24"}},
	Sysctl:    map[string]string{"vm.min_free_kbytes": "3923", "net.ipv4.tcp_rmem": "4096 131072 6291456"},
}

func (n *fakeNode) Status(ctx context.Context) (NodeStatus, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return testNodeStatus, n.err
}

func (n *fakeNode) Reboot(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.reboots++
	return n.err
}

func (n *fakeNode) Shutdown(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.shutdowns++
	return n.err
}

// fakeServices holds two services; lines sent on follow reach following log readers.
type fakeServices struct {
	mu        sync.Mutex
	restarted []string
	panicList bool
	follow    chan string
}

var since = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func (s *fakeServices) List(ctx context.Context) ([]Service, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.panicList {
		panic("list exploded")
	}
	return []Service{
		{Name: "containerd", State: StateRunning, PID: 123, Since: since},
		{Name: "kubelet", State: StateBackoff, Restarts: 3 + len(s.restarted), Since: since, LastExit: "exit status 1"},
	}, nil
}

func (s *fakeServices) known(name string) error {
	if name != "containerd" && name != "kubelet" {
		return fmt.Errorf("%w %q", ErrUnknownService, name)
	}
	return nil
}

func (s *fakeServices) Restart(ctx context.Context, name string) error {
	if err := s.known(name); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.restarted = append(s.restarted, name)
	return nil
}

func (s *fakeServices) Logs(ctx context.Context, name string, opts LogOptions) (io.ReadCloser, error) {
	if err := s.known(name); err != nil {
		return nil, err
	}
	lines := []string{"one\n", "two\n", "three\n"}
	if opts.Tail > 0 && opts.Tail < len(lines) {
		lines = lines[len(lines)-opts.Tail:]
	}
	buffered := name + ": " + strings.Join(lines, name+": ")
	if !opts.Follow {
		return io.NopCloser(strings.NewReader(buffered)), nil
	}
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte(buffered))
		for {
			select {
			case l := <-s.follow:
				if _, err := pw.Write([]byte(l)); err != nil {
					return
				}
			case <-ctx.Done():
				pw.Close()
				return
			}
		}
	}()
	return pr, nil
}

// fakeHealth is a health model with two parts: services ok, disk nearly
// full.
func fakeHealth() *health.Model {
	m := health.New(health.WithLogger(slog.New(slog.DiscardHandler)))
	m.Part("services").Set(health.OK, "2 services running")
	m.Part("disk").Set(health.Degraded, "CAIRN-DATA is nearly full: 20 MiB free of 4096 MiB")
	return m
}

// env is a node API server on loopback and a valid client for it.
type env struct {
	pki *pki.PKI
	// identity is the node's own (testNode's) key and certificate.
	identity *pki.Pair
	url      string
	node     *fakeNode
	svcs     *fakeServices
	health   *health.Model
	client   *Client
	log      *syncBuffer
	srv      *Server
	// stop ends Serve and returns its error; it runs at cleanup too.
	stop func() error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testNode is the name the test server's identity is issued for.
const testNode = "edge-1"

var (
	pkiOnce      sync.Once
	testPKI      *pki.PKI
	testIdentity *pki.Pair
	pkiErr       error
)

// sharedPKI makes one PKI and testNode's identity for the whole test
// binary: key generation is the slow part.
func sharedPKI(t testing.TB) *pki.PKI {
	t.Helper()
	pkiOnce.Do(func() {
		dir, err := mkTemp()
		if err != nil {
			pkiErr = err
			return
		}
		if testPKI, pkiErr = pki.Ensure(dir, pki.Options{}); pkiErr == nil {
			testIdentity, pkiErr = testPKI.IssueNode(testNode, nil)
		}
	})
	if pkiErr != nil {
		t.Fatal(pkiErr)
	}
	return testPKI
}

// start serves the API on loopback with the test PKI; opts (tests may
// pass their own, to set unexported limits) come after the test's logger.
func start(t testing.TB, opts ...Option) *env {
	t.Helper()
	p := sharedPKI(t)
	tlsConf, err := ServerTLS(p.CA.CertPEM, testIdentity.CertPEM, testIdentity.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{pki: p, identity: testIdentity, url: "https://" + ln.Addr().String(), node: &fakeNode{}, svcs: &fakeServices{follow: make(chan string)}, health: fakeHealth(), log: &syncBuffer{}}
	srv := NewServer(e.node, e.svcs, append([]Option{WithHealth(e.health), WithLogger(slog.New(slog.NewTextHandler(e.log, nil)))}, opts...)...)
	e.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln, tlsConf) }()
	var once sync.Once
	var serveErr error
	e.stop = func() error {
		once.Do(func() {
			cancel()
			serveErr = <-done
		})
		return serveErr
	}
	t.Cleanup(func() {
		if err := e.stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	e.client = e.clientWith(t, p.CA, p.Client, testNode)
	return e
}

// clientWith returns a client trusting ca, presenting cert (none if nil),
// expecting serverName.
func (e *env) clientWith(t testing.TB, ca, cert *pki.Pair, serverName string) *Client {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	conf := ClientTLS(pool, tlsCert(t, cert), serverName)
	if cert == nil {
		conf.Certificates = nil
	}
	c, err := NewClient(e.url, conf)
	if err != nil {
		t.Fatal(err)
	}
	c.Timeout = 10 * time.Second
	t.Cleanup(c.CloseIdleConnections)
	return c
}
