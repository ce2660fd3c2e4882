// Command cairn-bench measures the figures README.md reports and prints
// them as a Markdown table: build time (cold and warm cache), image, slot
// and initramfs sizes, boot time under QEMU to `cairn: init ok` and
// `cairn: agent ready` (and of the Raspberry Pi's card under the Pi
// harness), the idle memory of the OS with a service running,
// the node API's status latency, the bytes a node downloads for a small
// change (delta downloads), and over-the-air upgrades under QEMU (time to
// committed and to a rollback, bytes with connection cuts, the agent's
// memory while it upgrades). Run it through `make bench`, which
// prepares the inputs and the container runtime.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/agent/release"
	"github.com/cairn-edge/cairn/builder/build"
	"github.com/cairn-edge/cairn/builder/pki"
	"github.com/cairn-edge/cairn/qemu-tests/qemu"
	"github.com/cairn-edge/cairn/qemu-tests/testimage"
)

func main() {
	var o options
	var boards, cmdline string
	flag.StringVar(&o.runtimeDir, "runtime", "out/bin", "container runtime binaries (make runtime)")
	flag.IntVar(&o.runs, "n", 3, "runs per timing")
	flag.DurationVar(&o.idle, "idle", 30*time.Second, "how long a node idles before its memory is read")
	flag.StringVar(&boards, "boards", "qemu-x86_64,qemu-aarch64", "boards to measure, comma-separated")
	flag.BoolVar(&o.memoryOnly, "memory", false, "measure only the idle memory (quick, for tuning)")
	flag.BoolVar(&o.kubeOnly, "kube", false, "measure only the Kubernetes node (needs make kube-amd64)")
	flag.BoolVar(&o.piOnly, "pi", false, "measure only the Raspberry Pi card's boot under the Pi harness (QEMU raspi3b)")
	flag.BoolVar(&o.floorOnly, "floor", false, "measure only the kernel-only memory floor (quickest)")
	flag.BoolVar(&o.deltaOnly, "delta", false, "measure only the delta downloads of small changes (no QEMU; the Kubernetes pair needs make kube-amd64)")
	flag.BoolVar(&o.upgradeOnly, "upgrade", false, "measure only the over-the-air upgrades of qemu-x86_64 (QEMU; needs docker-registry): time to committed and to a rollback, bytes with and without cuts, the agent's memory")
	flag.Func("floor-cmdline", "with -floor, also measure the kernel alone with these parameters (repeatable), e.g. cma=0", func(v string) error {
		o.floorMore = append(o.floorMore, v)
		return nil
	})
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (images, artifacts) and print its path")
	flag.StringVar(&o.kernels, "kernels", ".cache/debian", "Debian's unpacked kernels, linux-<arch>/boot/vmlinuz (make inputs)")
	flag.StringVar(&cmdline, "cmdline", "", "kernel parameters appended to every image's command line, e.g. transparent_hugepage=madvise to measure the old default")
	flag.Parse()
	o.boards, o.cmdline = strings.Split(boards, ","), strings.Fields(cmdline)
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "cairn-bench: %v\n", err)
		os.Exit(1)
	}
}

// options are the command line's choices.
type options struct {
	runtimeDir, kernels                     string
	boards, cmdline, floorMore              []string
	runs                                    int
	idle                                    time.Duration
	memoryOnly, kubeOnly, floorOnly, piOnly bool
	deltaOnly, upgradeOnly, keep            bool
}

func row(k, v string, args ...any) { fmt.Printf("| %s | %s |\n", k, fmt.Sprintf(v, args...)) }

func run(o options) error {
	root, err := testimage.RepoRoot()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "cairn-bench-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintf(os.Stderr, "cairn-bench: work directory %s (kept)\n", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	fmt.Printf("| figure | value |\n| --- | --- |\n")
	type board struct {
		name string
		arch qemu.Arch
	}
	var chosen []board
	for _, b := range []board{{"qemu-x86_64", qemu.AMD64}, {"qemu-aarch64", qemu.ARM64}} {
		if slices.Contains(o.boards, b.name) {
			chosen = append(chosen, b)
		}
	}
	if o.floorOnly {
		for _, b := range chosen {
			if err := benchFloor(o.kernels, tmp, b.name, b.arch, o.floorMore...); err != nil {
				return err
			}
		}
		return nil
	}
	env := &testimage.Env{Root: root, BinDir: filepath.Join(tmp, "bin"), PKIDir: filepath.Join(tmp, "pki"), Cmdline: o.cmdline, Node: "bench"}
	if o.deltaOnly {
		return benchDeltas(env, tmp, o)
	}
	if o.upgradeOnly {
		return benchUpgrades(env, tmp, o)
	}
	for _, arch := range []string{"amd64", "arm64"} {
		if err := env.Binaries(arch); err != nil {
			return err
		}
	}
	if o.piOnly {
		return benchPi(env, tmp, o.runs)
	}
	if !env.LinkRuntime(o.runtimeDir, "amd64", "arm64") {
		return fmt.Errorf("no container runtime in %s (make runtime)", o.runtimeDir)
	}
	if len(o.cmdline) > 0 {
		row("extra kernel command line of every image", "`%s`", strings.Join(o.cmdline, " "))
	}
	if o.kubeOnly {
		return benchKube(env, tmp, o.boards)
	}
	for _, b := range chosen {
		if !o.memoryOnly {
			if err := benchBoard(env, tmp, b.name, b.arch, o.runs); err != nil {
				return err
			}
		}
		if err := benchFloor(o.kernels, tmp, b.name, b.arch); err != nil {
			return err
		}
		if err := benchMemory(env, tmp, b.name, b.arch, o.idle); err != nil {
			return err
		}
	}
	if o.memoryOnly {
		return nil
	}
	if err := benchPi(env, tmp, o.runs); err != nil {
		return err
	}
	if err := benchKube(env, tmp, o.boards); err != nil {
		return err
	}
	if err := benchDeltas(env, tmp, o); err != nil {
		return err
	}
	if err := benchUpgrades(env, tmp, o); err != nil {
		return err
	}
	return benchAPI(tmp)
}

// benchBoard measures the minimal image: build times, sizes and boot times.
func benchBoard(env *testimage.Env, tmp, board string, arch qemu.Arch, runs int) error {
	var cold, warm []time.Duration
	var res *build.Result
	for i := range runs {
		env.Cache = filepath.Join(tmp, fmt.Sprintf("cache-%s-%d", board, i))
		for _, list := range []*[]time.Duration{&cold, &warm} { // the same cache: first cold, then warm
			start := time.Now()
			var err error
			if res, err = env.Minimal(board, filepath.Join(tmp, "out")); err != nil {
				return err
			}
			*list = append(*list, time.Since(start))
		}
	}
	n := fmt.Sprint(runs)
	row(board+": build minimal, cold cache (median of "+n+")", "%s", median(cold))
	row(board+": build minimal, warm cache (median of "+n+")", "%s", median(warm))
	zst, err := zstdSize(res.Image)
	if err != nil {
		return err
	}
	row(board+": image raw / data blocks / zstd -19", "%d MiB / %.1f MiB / %.1f MiB", res.ImageSize>>20, mib(res.MappedBytes), mib(zst))
	row(board+": slot squashfs / initramfs", "%.1f MiB / %.1f MiB", mib(res.SlotSize), mib(res.InitramfsSize))

	return timeBoots(board, runs, func() (*qemu.VM, func(), error) {
		vm, disk, err := boot(tmp, res.Image, arch)
		return vm, func() { os.Remove(disk) }, err
	})
}

// timeBoots boots runs times with start, which returns the VM and what to
// clean up after it, and reports QEMU start → `cairn: init ok` and →
// `cairn: agent ready` for name: median, min and max.
func timeBoots(name string, runs int, start func() (*qemu.VM, func(), error)) error {
	var inits, agents []time.Duration
	accel := ""
	for range runs {
		vm, clean, err := start()
		if err != nil {
			return err
		}
		accel = vm.Accel()
		m1, err := vm.Expect(5*time.Minute, `cairn: init ok`)
		var m2 *qemu.Match
		if err == nil {
			m2, err = vm.Expect(5*time.Minute, `cairn: agent ready`)
		}
		vm.Kill()
		clean()
		if err != nil {
			return err
		}
		inits, agents = append(inits, m1.At), append(agents, m2.At)
	}
	n := fmt.Sprint(runs)
	row(name+": QEMU start → `cairn: init ok` ("+accel+", first boot, median of "+n+")", "%s (min %s, max %s)", median(inits), short(slices.Min(inits)), short(slices.Max(inits)))
	row(name+": QEMU start → `cairn: agent ready` ("+accel+", first boot, median of "+n+")", "%s (min %s, max %s)", median(agents), short(slices.Min(agents)), short(slices.Max(agents)))
	return nil
}

// benchMemory boots the minimal image and an image with containerd and
// one idle service, leaves each alone for idle and reads every process's
// memory and the kernel's through the API.
func benchMemory(env *testimage.Env, tmp, board string, arch qemu.Arch, idle time.Duration) error {
	if env.Cache == "" {
		env.Cache = filepath.Join(tmp, "cache")
	}
	minimal, err := env.Minimal(board, filepath.Join(tmp, "out-minimal-"+board))
	if err != nil {
		return err
	}
	st, _, err := idleStatus(tmp, minimal, arch, 1024, `cairn: agent ready`, idle)
	if err != nil {
		return err
	}
	memoryRows(board, "minimal image (init + agent)", 1024, st)
	svc, err := env.ServicesImage(board, string(arch), tmp, "idle")
	if err != nil {
		return err
	}
	row(board+": slot squashfs with containerd, runc and one service", "%.1f MiB", mib(svc.SlotSize))
	if st, _, err = idleStatus(tmp, svc, arch, 1024, `cairn: services ready`, idle); err != nil {
		return err
	}
	var osRSS, osPSS, osAnon, allRSS, allPSS uint64
	var parts []string
	for _, p := range st.Processes {
		allRSS, allPSS = allRSS+p.RSSBytes, allPSS+p.PSSBytes
		switch p.Name {
		case "init", "containerd", "cairn-agent":
			osRSS, osPSS, osAnon = osRSS+p.RSSBytes, osPSS+p.PSSBytes, osAnon+p.AnonBytes
		}
		parts = append(parts, fmt.Sprintf("%s %.1f/%.1f/%.1f", p.Name, mib(int64(p.RSSBytes)), mib(int64(p.PSSBytes)), mib(int64(p.AnonBytes))))
	}
	row(board+": idle OS memory, init + containerd + agent (RSS / PSS / anonymous, after "+idle.String()+")", "%.1f MiB / %.1f MiB / %.1f MiB", mib(int64(osRSS)), mib(int64(osPSS)), mib(int64(osAnon)))
	row(board+": idle, all "+fmt.Sprint(len(st.Processes))+" processes incl. shim + service (RSS / PSS; per process RSS/PSS/anon)", "%.1f MiB / %.1f MiB (%s)", mib(int64(allRSS)), mib(int64(allPSS)), strings.Join(parts, ", "))
	row(board+": memory available to workloads (of 1024 MiB guest RAM)", "%.0f MiB", mib(int64(st.Memory.AvailableBytes)))
	memoryRows(board, "containerd + one idle service", 1024, st)
	return nil
}

// memoryRows reports where a node's RAM is: MemTotal − MemAvailable (what
// workloads cannot have), split into what the kernel holds back from the
// start (guest RAM − MemTotal, beside it), what it keeps free (the
// min_free reserve, whose watermarks MemAvailable subtracts), what it uses
// (slab, kernel stacks, page tables, per-CPU areas, modules) and what our
// processes pin (PSS).
func memoryRows(board, kind string, ramMiB int, st *api.Status) {
	m := st.Memory
	var pss uint64
	for _, p := range st.Processes {
		pss += p.PSSBytes
	}
	kernel := m.SlabBytes + m.KernelStackBytes + m.PageTablesBytes + m.PercpuBytes + m.ModulesBytes
	row(fmt.Sprintf("%s: %s, %d MiB guest: **MemTotal − MemAvailable**", board, kind, ramMiB), "**%.1f MiB** (MemTotal %.1f, MemAvailable %.1f, MemFree %.1f MiB; THP %s)",
		mib(int64(m.TotalBytes-m.AvailableBytes)), mib(int64(m.TotalBytes)), mib(int64(m.AvailableBytes)), mib(int64(m.FreeBytes)), m.TransparentHugepages)
	row(fmt.Sprintf("%s: %s: kernel holds back / keeps free / uses / our processes pin", board, kind),
		"%.1f MiB (RAM − MemTotal) / %.1f MiB (min_free) / %.1f MiB (slab %.1f of it unreclaimable %.1f, stacks %.1f, page tables %.1f, per-CPU %.1f, modules %.1f) / %.1f MiB PSS",
		float64(ramMiB)-mib(int64(m.TotalBytes)), mib(int64(m.MinFreeBytes)), mib(int64(kernel)), mib(int64(m.SlabBytes)), mib(int64(m.SlabUnreclaimableBytes)),
		mib(int64(m.KernelStackBytes)), mib(int64(m.PageTablesBytes)), mib(int64(m.PercpuBytes)), mib(int64(m.ModulesBytes)), mib(int64(pss)))
}

// idleStatus boots res with memMiB of RAM, waits for the console line
// milestone (and returns when it came), lets the node idle, and reads its
// status through the API.
func idleStatus(tmp string, res *build.Result, arch qemu.Arch, memMiB int, milestone string, idle time.Duration) (*api.Status, time.Duration, error) {
	sts, at, err := idleStatuses(tmp, res, arch, memMiB, milestone, idle)
	if err != nil {
		return nil, 0, err
	}
	return sts[0], at, nil
}

// idleStatuses boots res, waits for milestone and reads the node's status
// at each of the times after it (ascending). It returns the statuses and
// when the milestone came.
func idleStatuses(tmp string, res *build.Result, arch qemu.Arch, memMiB int, milestone string, after ...time.Duration) ([]*api.Status, time.Duration, error) {
	vm, disk, err := boot(tmp, res.Image, arch, qemu.WithPortForward(0, api.DefaultPort), qemu.WithMemory(memMiB))
	if err != nil {
		return nil, 0, err
	}
	defer os.Remove(disk)
	defer vm.Kill()
	m, err := vm.Expect(10*time.Minute, milestone)
	if err != nil {
		return nil, 0, err
	}
	reached := time.Now()
	cfg, err := pki.LoadClientConfig(res.NodeConfig)
	if err != nil {
		return nil, 0, err
	}
	pool, cert, err := cfg.TLS()
	if err != nil {
		return nil, 0, err
	}
	c, err := api.NewClient(fmt.Sprintf("https://127.0.0.1:%d", vm.HostPort(api.DefaultPort)), api.ClientTLS(pool, cert, cfg.ServerName))
	if err != nil {
		return nil, 0, err
	}
	var sts []*api.Status
	for _, d := range after {
		time.Sleep(time.Until(reached.Add(d)))
		st, err := statusRetry(c, 3)
		if err != nil {
			return nil, 0, err
		}
		sts = append(sts, st)
	}
	return sts, m.At, nil
}

// statusRetry reads the node's status, trying again up to tries times: on
// a loaded machine a TCG guest can miss the client's 30 s timeout once.
func statusRetry(c *api.Client, tries int) (*api.Status, error) {
	for i := 1; ; i++ {
		st, err := c.Status(context.Background())
		if err == nil || i == tries {
			return st, err
		}
		time.Sleep(5 * time.Second)
	}
}

// benchKube boots an x86_64 node running the bundled Kubernetes (with
// CoreDNS, no workload), and reports the time to Ready and, after a
// minute idle, every process's memory.
func benchKube(env *testimage.Env, tmp string, boards []string) error {
	if env.Cache == "" {
		env.Cache = filepath.Join(tmp, "cache")
	}
	for _, b := range []struct {
		name, arch string
		qemu       qemu.Arch
	}{{"qemu-x86_64", "amd64", qemu.AMD64}, {"qemu-aarch64", "arm64", qemu.ARM64}} {
		if !slices.Contains(boards, b.name) {
			continue
		}
		if !env.HasKube(b.arch) {
			return fmt.Errorf("no cairn-kube for %s (make kube)", b.arch)
		}
		if err := benchKubeBoard(env, tmp, b.name, b.arch, b.qemu); err != nil {
			return err
		}
	}
	return nil
}

// benchKubeBoard measures a Kubernetes node of board: slot size, time to
// ready, and memory 1 and 5 minutes after ready (the second after the
// startup has settled and cairn-kube has released its startup pages).
func benchKubeBoard(env *testimage.Env, tmp, board, arch string, qarch qemu.Arch) error {
	res, err := env.KubeImage(board, arch, tmp)
	if err != nil {
		return err
	}
	row(board+": slot squashfs with Kubernetes", "%.1f MiB", mib(res.SlotSize))
	idles := []time.Duration{time.Minute, 5 * time.Minute}
	sts, ready, err := idleStatuses(tmp, res, qarch, 2048, `cairn: kubernetes ready`, idles...)
	if err != nil {
		return err
	}
	row(board+": QEMU start → `cairn: kubernetes ready` (tcg, first boot)", "%s", short(ready))
	for i, st := range sts {
		var rss, pss, anon uint64
		var parts []string
		for _, p := range st.Processes {
			rss, pss, anon = rss+p.RSSBytes, pss+p.PSSBytes, anon+p.AnonBytes
			parts = append(parts, fmt.Sprintf("%s %.1f/%.1f/%.1f", p.Name, mib(int64(p.RSSBytes)), mib(int64(p.PSSBytes)), mib(int64(p.AnonBytes))))
		}
		when := fmt.Sprintf("%s after ready", short(idles[i]))
		row(board+": idle Kubernetes node, all "+fmt.Sprint(len(st.Processes))+" processes, "+when+" (RSS / PSS / anonymous; per process the same)", "%.1f MiB / %.1f MiB / %.1f MiB (%s)", mib(int64(rss)), mib(int64(pss)), mib(int64(anon)), strings.Join(parts, ", "))
		row(board+": memory available to workloads (of 2048 MiB guest RAM), "+when, "%.0f MiB", mib(int64(st.Memory.AvailableBytes)))
		memoryRows(board, "Kubernetes node, "+when, 2048, st)
	}
	return nil
}

// boot starts a fresh 2 GiB copy of image.
func boot(tmp, image string, arch qemu.Arch, opts ...qemu.Option) (*qemu.VM, string, error) {
	disk := filepath.Join(tmp, "boot.img")
	if err := qemu.CopySparse(disk, image); err != nil {
		return nil, "", err
	}
	if err := os.Truncate(disk, 2<<30); err != nil {
		return nil, "", err
	}
	vm, err := qemu.Start(context.Background(), append([]qemu.Option{qemu.WithArch(arch), qemu.WithDisk(disk)}, opts...)...)
	return vm, disk, err
}

// benchAPI serves this machine's real status (LocalNode reading /proc) over
// mutual TLS on loopback and times 1,000 calls from a keep-alive client.
func benchAPI(tmp string) error {
	p, err := pki.Ensure(filepath.Join(tmp, "api-pki"), pki.Options{})
	if err != nil {
		return err
	}
	id, err := p.IssueNode("bench", nil)
	if err != nil {
		return err
	}
	srvTLS, err := api.ServerTLS(p.CA.CertPEM, id.CertPEM, id.KeyPEM)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := api.NewServer(&api.LocalNode{Release: release.Release{Name: "bench", Version: "0"}, Slot: "a"}, noServices{})
	go srv.Serve(ctx, ln, srvTLS)
	path := filepath.Join(tmp, "node.yaml")
	if err := pki.WriteClientConfig(path, "https://"+ln.Addr().String(), "bench", p); err != nil {
		return err
	}
	cfg, err := pki.LoadClientConfig(path)
	if err != nil {
		return err
	}
	pool, cert, err := cfg.TLS()
	if err != nil {
		return err
	}
	c, err := api.NewClient(cfg.Server, api.ClientTLS(pool, cert, cfg.ServerName))
	if err != nil {
		return err
	}
	var lat []time.Duration
	for range 1000 {
		start := time.Now()
		if _, err := c.Status(ctx); err != nil {
			return err
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	row("node API `status` over mTLS on loopback, this machine's real /proc (1,000 calls, keep-alive)", "p50 %s, p99 %s", lat[len(lat)/2].Round(time.Microsecond), lat[len(lat)*99/100].Round(time.Microsecond))
	return nil
}

type noServices struct{}

func (noServices) List(context.Context) ([]api.Service, error) { return nil, nil }
func (noServices) Restart(_ context.Context, name string) error {
	return fmt.Errorf("%w: %q", api.ErrUnknownService, name)
}
func (noServices) Logs(_ context.Context, name string, _ api.LogOptions) (io.ReadCloser, error) {
	return nil, fmt.Errorf("%w: %q", api.ErrUnknownService, name)
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return short(s[len(s)/2])
}

func short(d time.Duration) time.Duration { return d.Round(10 * time.Millisecond) }

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func zstdSize(img string) (int64, error) {
	out, err := exec.Command("sh", "-c", "zstd -19 -T0 -c "+img+" | wc -c").Output()
	if err != nil {
		return 0, fmt.Errorf("zstd: %w (install zstd)", err)
	}
	var n int64
	_, err = fmt.Sscan(strings.TrimSpace(string(out)), &n)
	return n, err
}
