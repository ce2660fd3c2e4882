package qemutests

import (
	"flag"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// Scheduling. Under TCG a guest's vCPU takes a host core, so the tests
// share this machine's cores (runtime.NumCPU: 2 on CI) rather than go
// test's -parallel: each test, after t.Parallel, claims the cores its guest
// needs and holds them until it ends (share). Claims are granted by rank,
// the longest test first (longestFirst), so the run does not end with one
// long test alone on the machine; a test whose claim does not fit yet
// waits while smaller claims behind it fill the free cores. The tests
// whose guests want the machine to themselves claim every core:
// TestAgentAPI, for its latency figures under a flood, and the Kubernetes
// guests, two vCPUs each, whose API server misses its deadlines when TCG
// shares the cores; TestRaspberryPi, whose raspi3b has four.

// longestFirst ranks the tests that claim cores, longest first (as
// measured on CI's 2 cores; docs/tests.md has the times). A test not
// listed ranks after them.
var longestFirst = []string{
	"TestUpgrade",
	"TestKubernetes",
	"TestKubernetesAgent",
	"TestAgentAPI",
	"TestRaspberryPi",
	"TestUpgradePowerCuts",
	"TestDataFormatCut",
	"TestUBootExtlinux",
	"TestBootAndPersist/qemu-aarch64",
	"TestBootAndPersist/generic-arm64",
	"TestNoNetworkAndBadNodeFile",
	"TestBootAndPersist/qemu-x86_64",
	"TestBootAndPersist/generic-x86_64",
	"TestNodeFile",
	"TestDocs",
	"TestCorruptSlot",
	"TestImageReproducible",
	"TestImageHoldsNoKey",
}

// machine hands out this machine's cores to the tests.
var machine = newCores(runtime.NumCPU())

// everyCore is a claim of the whole machine.
const everyCore = -1

// share makes t a parallel test that runs once cores of the machine are
// free for it (everyCore: all of them), and frees them when t ends.
func share(t *testing.T, cores int) {
	t.Helper()
	t.Parallel()
	n := machine.acquire(t.Name(), cores)
	t.Cleanup(func() { machine.release(n) })
}

// unboundedParallel lifts go test's -parallel (GOMAXPROCS by default) out
// of the way of share, unless the command line set it. TestMain calls it
// after flag.Parse.
func unboundedParallel() {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		flag.Set("test.parallel", "64")
	}
}

// settle is how long the first claims wait before any is granted: every
// test go test releases at once makes its claim within it, so the longest
// starts first whatever order the goroutines woke in.
const settle = 500 * time.Millisecond

// cores is a counting semaphore of CPU cores granted by rank.
type cores struct {
	mu      sync.Mutex
	total   int
	free    int
	settled bool
	waiting []*claim
}

// claim is a test waiting for cores.
type claim struct {
	rank, cores int
	granted     chan struct{}
}

func newCores(n int) *cores {
	return &cores{total: n, free: n}
}

// acquire blocks until n cores (everyCore: all) are granted to the test
// name, and returns how many it holds.
func (c *cores) acquire(name string, n int) int {
	c.mu.Lock()
	if n == everyCore || n > c.total {
		n = c.total
	}
	rank := slices.Index(longestFirst, name)
	if rank < 0 {
		rank = len(longestFirst)
	}
	cl := &claim{rank: rank, cores: n, granted: make(chan struct{})}
	c.waiting = append(c.waiting, cl)
	if !c.settled && len(c.waiting) == 1 {
		time.AfterFunc(settle, func() {
			c.mu.Lock()
			c.settled = true
			c.grant()
			c.mu.Unlock()
		})
	}
	c.grant()
	c.mu.Unlock()
	<-cl.granted
	return n
}

// release gives back n cores.
func (c *cores) release(n int) {
	c.mu.Lock()
	c.free += n
	c.grant()
	c.mu.Unlock()
}

// grant hands free cores to the waiting claims by rank: each that fits.
// Called with c.mu held.
func (c *cores) grant() {
	if !c.settled {
		return
	}
	slices.SortStableFunc(c.waiting, func(a, b *claim) int { return a.rank - b.rank })
	c.waiting = slices.DeleteFunc(c.waiting, func(cl *claim) bool {
		if cl.cores > c.free {
			return false
		}
		c.free -= cl.cores
		close(cl.granted)
		return true
	})
}

// TestCoresByRank: on two cores, of claims made at once the longest test
// starts first, a whole-machine claim waits for both cores while one-core
// claims behind it fill a free core, and it starts once both are free.
func TestCoresByRank(t *testing.T) {
	c := newCores(2)
	var mu sync.Mutex
	var order []string
	run := func(name string, n int, hold time.Duration, done *sync.WaitGroup) {
		defer done.Done()
		got := c.acquire(name, n)
		mu.Lock()
		order = append(order, name)
		mu.Unlock()
		time.Sleep(hold)
		c.release(got)
	}
	var wg sync.WaitGroup
	wg.Add(4)
	go run("TestImageHoldsNoKey", 1, 50*time.Millisecond, &wg)
	go run("TestKubernetes", everyCore, 10*time.Millisecond, &wg)
	go run("TestDocs", 1, 50*time.Millisecond, &wg)
	go run("TestUpgrade", 1, 300*time.Millisecond, &wg)
	wg.Wait()
	slices.Sort(order[:2]) // granted together
	want := []string{"TestDocs", "TestUpgrade", "TestImageHoldsNoKey", "TestKubernetes"}
	if !slices.Equal(order, want) {
		t.Errorf("started in the order %q, want %q", order, want)
	}
}
